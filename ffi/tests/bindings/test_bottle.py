# The FFI surface from a second language (uniffi's Python bindings over the real
# cdylib): sync calls, async calls on the tokio runtime, and errors as exceptions.
# Swift covers the same surface plus callbacks against Docker (scripts/swift-check.sh).
import asyncio

from bottle_ffi import BottleError, BottleManager, init_logging

init_logging()
init_logging()  # a second call is a no-op, not a panic

manager = BottleManager()


async def main():
    try:
        await manager.up("/nonexistent/bottle.toml")
    except BottleError.InvalidSpec as e:
        assert "/nonexistent/bottle.toml" in str(e), str(e)
    else:
        raise AssertionError("up of a missing bottle.toml succeeded")

    checks = await manager.doctor()
    assert checks[0].name == "backend", checks
    assert checks[0].ok and checks[0].detail in ("docker", "smolmachines"), checks[0]


asyncio.run(main())
