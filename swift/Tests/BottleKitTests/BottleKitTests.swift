// BottleKit against the real Rust library and the real Docker engine: what the
// app relies on, checked in the language the app is written in.

import Foundation
import XCTest

@testable import BottleKit

/// What a listener saw, in order, with whether it arrived off the main thread.
enum Seen: Sendable {
    case event(BottleEvent, offMain: Bool)
    case notification(BottleNotification)
    case closed(String)
}

/// Records callbacks into an AsyncStream, so tests await them instead of sleeping.
final class Recorder: @unchecked Sendable {
    let stream: AsyncStream<Seen>
    private let continuation: AsyncStream<Seen>.Continuation
    private let lock = NSLock()
    private var seenCount = 0

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: Seen.self)
    }

    var count: Int { lock.withLock { seenCount } }

    lazy var relay = EventRelay(
        onEvent: { [self] in record(.event($0, offMain: !Thread.isMainThread)) },
        onNotification: { [self] in record(.notification($0)) },
        onClosed: { [self] in record(.closed($0)) }
    )

    private func record(_ s: Seen) {
        lock.withLock { seenCount += 1 }
        continuation.yield(s)
    }

    /// The first callback matching `match` within `seconds`, or nil.
    func first(within seconds: Double, _ match: @escaping @Sendable (Seen) -> Bool) async -> Seen? {
        let stream = stream
        return await withTaskGroup(of: Seen?.self) { group in
            group.addTask {
                for await s in stream where match(s) { return s }
                return nil
            }
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
                return nil
            }
            let result = await group.next() ?? nil
            group.cancelAll()
            return result
        }
    }
}

/// The steps a progress listener heard, from whichever Rust thread called it.
final class StepLog: @unchecked Sendable {
    private let lock = NSLock()
    private var steps: [String] = []

    func add(_ step: String) { lock.withLock { steps.append(step) } }
    var all: [String] { lock.withLock { steps } }
}

/// A temporary folder holding a world-writable workspace and a bottle.toml for it that
/// allows `allowed.test`, followed by `extra` (more TOML); the folder and the spec's path.
func writeBottle(_ name: String, extra: String = "") throws -> (dir: URL, spec: String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(name)
    let workspace = dir.appendingPathComponent("workspace")
    try FileManager.default.createDirectory(at: workspace, withIntermediateDirectories: true)
    try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: workspace.path)
    let spec = dir.appendingPathComponent("bottle.toml")
    try """
    name = "\(name)"
    workspace = "\(workspace.path)"
    [egress]
    allow = ["allowed.test"]
    \(extra)
    """.write(to: spec, atomically: true, encoding: .utf8)
    return (dir, spec.path)
}

/// Bounds for the Docker round trip: `up` may build images on a cold cache.
let upTimeout: Double = 600
let eventTimeout: Double = 60

final class BottleKitTests: XCTestCase {
    let manager = BottleManager()

    func testMissingSpecThrowsInvalidSpec() async {
        do {
            _ = try await manager.up(specPath: "/nonexistent/bottle.toml", progress: ProgressRelay { _ in })
            XCTFail("up of a missing bottle.toml succeeded")
        } catch BottleError.InvalidSpec(let message, let chain) {
            XCTAssertTrue(message.contains("/nonexistent/bottle.toml"), message)
            let error = BottleError.InvalidSpec(message: message, chain: chain)
            XCTAssertEqual("\(error)", message, "Display is the sentence")
            XCTAssertEqual(error.localizedDescription, message)
        } catch {
            XCTFail("expected BottleError.InvalidSpec, got \(error)")
        }
    }

    func testUnknownBottleThrowsNotFound() async {
        do {
            _ = try await manager.status(name: "swift-no-such-bottle-\(getpid())")
            XCTFail("status of an unknown bottle succeeded")
        } catch BottleError.NotFound(let message, _) {
            XCTAssertTrue(message.lowercased().contains("no bottle named"), message)
        } catch {
            XCTFail("expected BottleError.NotFound, got \(error)")
        }
    }

    /// up → status → an event on a Rust thread → cancel one subscription → down.
    func testRoundTripOnDocker() async throws {
        let name = "swift\(getpid())-rt"
        let (dir, spec) = try writeBottle(name)
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            try await roundTrip(name: name, spec: spec)
        } catch {
            _ = try? await manager.down(name: name)
            throw error
        }
        // After an early return, the bottle may still be up; a second down is NotFound.
        _ = try? await manager.down(name: name)
    }

    private func roundTrip(name: String, spec: String) async throws {
        let steps = StepLog()
        let started = try await manager.up(specPath: spec, progress: ProgressRelay { steps.add($0) })
        XCTAssertFalse(steps.all.isEmpty, "up reported no progress")
        XCTAssertEqual(started.name, name)
        XCTAssertEqual(started.backend, "docker")
        XCTAssertEqual(started.state, .running)
        // The start check saw the bundle proxy answer and the control plane stay out of reach.
        XCTAssertEqual(started.allowlist.verdict, .verified, started.allowlist.detail)
        XCTAssertNotNil(started.allowlist.checkedAt)
        XCTAssertEqual(started.allowlist.allowlist, ["allowed.test"])
        XCTAssertNil(started.allowlist.vmm, "Docker's allowlist is not enforced by a VMM")

        let status = try await manager.status(name: name)
        XCTAssertEqual(status.state, .running)
        XCTAssertEqual(status.allowlist.verdict, .verified)

        // The start check's refused probe is on the bundle's event stream.
        let watcher = Recorder()
        let sub = try await manager.subscribe(name: name, listener: watcher.relay)
        let blocked = await watcher.first(within: eventTimeout) {
            if case .event(let ev, _) = $0, case .egressBlocked = ev.kind { return true }
            return false
        }
        guard case .event(let ev, let offMain)? = blocked, case .egressBlocked(_, _, let target, let rule, _, _) = ev.kind else {
            return XCTFail("no egress_blocked event within \(eventTimeout)s")
        }
        XCTAssertTrue(offMain, "callbacks come from a Rust thread")
        XCTAssertEqual(ev.bottle, name)
        XCTAssertTrue(target.hasPrefix("bottle-start-check.invalid"), target)
        XCTAssertFalse(rule.isEmpty)
        // Rust decided to notify, and worded it.
        let note = await watcher.first(within: eventTimeout) {
            if case .notification = $0 { return true }
            return false
        }
        guard case .notification(let n)? = note else { return XCTFail("no notification for the blocked request") }
        XCTAssertEqual(n.title, "\(name): connection blocked")
        XCTAssertEqual(n.bottle, name)

        // A cancelled subscription hears nothing more; a live one hears `down`.
        let cancelled = Recorder()
        let gone = try await manager.subscribe(name: name, listener: cancelled.relay)
        gone.cancel()
        XCTAssertFalse(gone.isActive())
        let heardBeforeDown = cancelled.count

        try await manager.down(name: name)
        let stopping = await watcher.first(within: eventTimeout) {
            if case .event(let ev, _) = $0, case .bottleState(let state, _) = ev.kind { return state == "stopping" }
            return false
        }
        XCTAssertNotNil(stopping, "the live subscription saw no bottle_state change")
        XCTAssertEqual(cancelled.count, heardBeforeDown, "a cancelled subscription was called")
        sub.cancel()

        do {
            _ = try await manager.status(name: name)
            XCTFail("status after down succeeded")
        } catch BottleError.NotFound {
        }
    }
}
