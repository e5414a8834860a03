# The FFI surface from a second language (uniffi's Python bindings over the real
# cdylib): sync calls, async calls on the tokio runtime, errors as exceptions with
# their sentence and cause chain, and a foreign progress listener.
# Swift covers the same surface plus callbacks against Docker (scripts/swift-check.sh).
import asyncio

from bottle_ffi import BottleError, BottleManager, ProgressListener, init_logging

init_logging()
init_logging()  # a second call is a no-op, not a panic

manager = BottleManager()


class Steps(ProgressListener):
    def __init__(self):
        self.steps = []

    def on_step(self, message):
        self.steps.append(message)


async def main():
    steps = Steps()
    try:
        await manager.up("/nonexistent/bottle.toml", steps)
    except BottleError.InvalidSpec as e:
        assert "/nonexistent/bottle.toml" in e.message, e.message
        assert e.message[0].isupper() and e.message.endswith("."), e.message
        assert "/nonexistent/bottle.toml" in e.chain[0], e.chain
        assert steps.steps == [], "a spec that does not load starts no step"
    else:
        raise AssertionError("up of a missing bottle.toml succeeded")

    checks = await manager.doctor()
    assert checks[0].name == "backend", checks
    assert checks[0].ok and checks[0].detail.split(" (from ")[0] in ("docker", "smolmachines"), checks[0]


asyncio.run(main())
