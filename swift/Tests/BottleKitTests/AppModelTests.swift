// AppModel against the real Rust library and a real bottle on the host's Docker
// engine: the access-request notification and its Approve/Deny through the model,
// a row changing as events arrive (no refresh), the kill switch, Stop asking first,
// the recent bottle.toml files, and errors as sentences. The only double is for
// Apple's notification center, which Linux has none of.

import Foundation
import XCTest

@testable import BottleKit

/// Test double of UNUserNotificationCenter: records what the model posts.
final class NotificationCenterDouble: NotificationPosting, @unchecked Sendable {
    private let lock = NSLock()
    private var all: [BottleNotification] = []

    func post(_ notification: BottleNotification) {
        lock.withLock { all.append(notification) }
    }

    var posted: [BottleNotification] { lock.withLock { all } }
}

/// Preferences in a UserDefaults suite of the test's own, removed afterwards.
func scratchPreferences(_ name: String) -> (Preferences, UserDefaults, String) {
    let suite = "dev.bottle.tests.\(name)"
    let defaults = UserDefaults(suiteName: suite)!
    defaults.removePersistentDomain(forName: suite)
    return (Preferences(defaults: defaults), defaults, suite)
}

/// Polls `check` on the main actor until it holds or `seconds` pass; whether it held.
@MainActor
func eventually(within seconds: Double, _ check: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if check() { return true }
        try? await Task.sleep(nanoseconds: 100_000_000)
    }
    return check()
}

final class AppModelTests: XCTestCase {
    @MainActor
    func testAFailedStartReadsAsASentenceWithItsCauses() async {
        let (prefs, defaults, suite) = scratchPreferences("errors\(getpid())")
        defer { defaults.removePersistentDomain(forName: suite) }
        let model = AppModel(poster: NotificationCenterDouble(), preferences: prefs)
        await model.start(specPath: "/nonexistent/bottle.toml")
        guard let error = model.lastError else { return XCTFail("a missing bottle.toml started") }
        XCTAssertFalse(error.message.contains("InvalidSpec"), error.message)
        XCTAssertFalse(error.message.contains("message:"), error.message)
        XCTAssertTrue(error.message.first!.isUppercase && error.message.hasSuffix("."), error.message)
        XCTAssertTrue(error.message.contains("/nonexistent/bottle.toml"), error.message)
        XCTAssertFalse(error.chain.isEmpty)
        XCTAssertTrue(error.chain.joined().contains("/nonexistent/bottle.toml"), "\(error.chain)")
        XCTAssertTrue(model.starting.isEmpty, "a failed start leaves no progress row")
        XCTAssertEqual(model.recentSpecs, [], "a file that did not start is not offered again")
    }

    @MainActor
    func testRecentSpecsAndTheApproveTTLOutliveTheModel() async {
        let (prefs, defaults, suite) = scratchPreferences("prefs\(getpid())")
        defer { defaults.removePersistentDomain(forName: suite) }
        XCTAssertEqual(prefs.approveTTLSecs, Preferences.defaultApproveTTLSecs)
        for i in 0...Preferences.maxRecentSpecs { prefs.rememberSpec("/b\(i)/bottle.toml") }
        prefs.rememberSpec("/b3/bottle.toml")
        let model = AppModel(poster: NotificationCenterDouble(), preferences: Preferences(defaults: defaults))
        XCTAssertEqual(model.recentSpecs.count, Preferences.maxRecentSpecs)
        XCTAssertEqual(model.recentSpecs.first, "/b3/bottle.toml", "most recent first, without repeats")
        XCTAssertEqual(model.recentSpecs.filter { $0 == "/b3/bottle.toml" }.count, 1)
        model.setApproveTTL(secs: 900)
        model.forgetRecentSpec("/b3/bottle.toml")
        let again = Preferences(defaults: defaults)
        XCTAssertEqual(again.approveTTLSecs, 900)
        XCTAssertFalse(again.recentSpecs.contains("/b3/bottle.toml"))
    }

    @MainActor
    func testAnActionOnAnotherNotificationDoesNothing() async {
        let model = AppModel(poster: NotificationCenterDouble(), preferences: scratchPreferences("noop\(getpid())").0)
        let plainTap = await model.handleNotificationResponse(
            actionIdentifier: "com.apple.UNNotificationDefaultActionIdentifier",
            userInfo: [NotificationKey.bottle: "x", NotificationKey.requestId: "r"])
        XCTAssertFalse(plainTap)
        let noRequest = await model.handleNotificationResponse(
            actionIdentifier: NotificationAction.approve.rawValue, userInfo: [NotificationKey.bottle: "x"])
        XCTAssertFalse(noRequest)
        XCTAssertNil(model.lastError, "nothing was called")
    }

    /// A real bottle whose agent asks for two hosts and then says it needs input.
    @MainActor
    func testAccessRequestsKillSwitchAndStopThroughTheModel() async throws {
        let name = "swift\(getpid())-model"
        // The agent's own calls to supervise, retried until the bundle answers (bounded).
        let (dir, spec) = try writeBottle(
            name,
            extra: #"""
                [agent]
                command = ["sh", "-c", '''
                post() { for i in $(seq 60); do curl -sf --noproxy '*' -X POST -H 'content-type: application/json' -d "$2" "$BOTTLE_SUPERVISE_URL$1" && return; sleep 1; done; }
                post /v1/requests '{"host":"approve-me.test","port":443,"reason":"swift model test"}'
                post /v1/requests '{"host":"deny-me.test","port":443,"reason":"swift model test"}'
                post /v1/state '{"state":"needs-input","message":"which branch?"}'
                exec sleep 3600
                ''']
                """#)
        let (prefs, defaults, suite) = scratchPreferences(name)
        defer {
            defaults.removePersistentDomain(forName: suite)
            try? FileManager.default.removeItem(at: dir)
        }
        let center = NotificationCenterDouble()
        let model = AppModel(poster: center, preferences: prefs)
        model.setApproveTTL(secs: 1234)
        do {
            try await drive(model, center, name: name, spec: spec)
        } catch {
            _ = try? await BottleManager().down(name: name)
            throw error
        }
        _ = try? await BottleManager().down(name: name)
    }

    @MainActor
    private func drive(_ model: AppModel, _ center: NotificationCenterDouble, name: String, spec: String) async throws {
        await model.start(specPath: spec)
        XCTAssertNil(model.lastError, model.lastError?.message ?? "")
        XCTAssertEqual(model.row(name)?.info.state, .running)
        XCTAssertTrue(model.starting.isEmpty)
        XCTAssertEqual(model.recentSpecs.first, spec)

        // Rust decides on each access request; the model posts it with Approve/Deny for its id.
        func request(_ host: String) -> BottleNotification? {
            center.posted.first { $0.category == accessRequestCategory() && $0.title.contains(host) }
        }
        let arrived = await eventually(within: eventTimeout) {
            request("approve-me.test") != nil && request("deny-me.test") != nil
        }
        XCTAssertTrue(arrived, "notifications: \(center.posted.map(\.title))")
        guard let approveMe = request("approve-me.test"), let denyMe = request("deny-me.test") else { return }
        XCTAssertEqual(approveMe.bottle, name)
        XCTAssertNotNil(approveMe.requestId)

        // The row changed as the events came: no refresh() was called.
        let live = await eventually(within: eventTimeout) {
            Set(model.row(name)?.pending.map(\.host) ?? []) == ["approve-me.test", "deny-me.test"]
                && model.row(name)?.control?.agentState == .needsInput
        }
        XCTAssertTrue(live, "row: \(String(describing: model.row(name)?.control))")
        XCTAssertEqual(model.row(name)?.control?.agentMessage, "which branch?")
        XCTAssertTrue(center.posted.contains { $0.title == "\(name): the agent needs you" && $0.body == "which branch?" })
        // The row's pending list can come from a refresh before the event line streams in.
        let logged = await eventually(within: eventTimeout) {
            model.row(name)?.events.contains { $0.line.contains("access requested") } ?? false
        }
        XCTAssertTrue(logged, "events: \(model.row(name)?.events.map(\.line) ?? [])")

        // The notification's Approve grants for the TTL from settings; its Deny denies.
        let approved = await model.handleNotificationResponse(
            actionIdentifier: NotificationAction.approve.rawValue, userInfo: approveMe.userInfo)
        XCTAssertTrue(approved)
        let denied = await model.handleNotificationResponse(
            actionIdentifier: NotificationAction.deny.rawValue, userInfo: denyMe.userInfo)
        XCTAssertTrue(denied)
        XCTAssertNil(model.lastError, model.lastError?.message ?? "")
        func decided(_ host: String) -> (approved: Bool, ttl: UInt64?)? {
            for event in model.row(name)?.events ?? [] {
                if case .accessDecided(_, let h, _, let approved, let ttl) = event.kind, h == host { return (approved, ttl) }
            }
            return nil
        }
        let both = await eventually(within: eventTimeout) {
            decided("approve-me.test") != nil && decided("deny-me.test") != nil
        }
        XCTAssertTrue(both, "events: \(model.row(name)?.events.map(\.line) ?? [])")
        XCTAssertEqual(decided("approve-me.test")?.approved, true)
        XCTAssertEqual(decided("approve-me.test")?.ttl, 1234, "Approve used the TTL from settings")
        XCTAssertEqual(decided("deny-me.test")?.approved, false)
        XCTAssertEqual(model.row(name)?.pending.count, 0)

        // The kill switch, from the bundle's own answer.
        await model.setKillSwitch(name, engaged: true)
        XCTAssertEqual(model.row(name)?.killSwitch, true)
        let heard = await eventually(within: eventTimeout) {
            model.row(name)?.events.contains { if case .killSwitch(true) = $0.kind { return true } else { return false } } ?? false
        }
        XCTAssertTrue(heard, "no kill_switch event reached the row")
        await model.setKillSwitch(name, engaged: false)
        XCTAssertEqual(model.row(name)?.killSwitch, false)

        // Stop asks first: cancelling keeps the bottle.
        model.requestStop(name)
        XCTAssertEqual(model.stopCandidate, name)
        model.cancelStop()
        XCTAssertNil(model.stopCandidate)
        _ = try await BottleManager().status(name: name)
        model.requestStop(name)
        await model.confirmStop()
        XCTAssertNil(model.row(name), "a stopped bottle leaves the list")
        do {
            _ = try await BottleManager().status(name: name)
            XCTFail("status after Stop succeeded")
        } catch BottleError.NotFound {
        }
    }
}
