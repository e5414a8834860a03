// The menu-bar app's state: what the views render, refreshed from Rust. Every
// action forwards to `BottleManager`; every change that arrives (an event, a
// finished call) re-reads the affected bottle from Rust instead of patching
// local state, so the app cannot drift from what the core reports. Events
// arrive from `subscribe` as they happen, so a row changes while the menu is closed.

import Foundation
// Debian's Swift cannot link Observation, so the Linux tests build the model without
// it; swift-check.sh type-checks it with BOTTLE_OBSERVATION, as the Mac builds it.
#if os(macOS) || BOTTLE_OBSERVATION
import Observation
#endif

@MainActor
#if os(macOS) || BOTTLE_OBSERVATION
@Observable
#endif
public final class AppModel {
    public struct Row: Identifiable, Equatable {
        public var id: String { info.name }
        public var info: BottleInfo
        /// `nil` while the bundle's control plane does not answer.
        public var control: ControlState?
        /// Newest last, at most `AppModel.maxRecentEvents`.
        public var events: [BottleEvent] = []

        public var pending: [PendingRequest] { control?.pending ?? [] }
        public var killSwitch: Bool { control?.killSwitch ?? false }
    }

    /// A bottle being started: the file and the latest step `up` reported.
    public struct Start: Identifiable, Equatable {
        public var id: String { specPath }
        public let specPath: String
        public var step: String
    }

    /// Events kept per bottle for the recent events view.
    public static let maxRecentEvents = 50

    public private(set) var bottles: [Row] = []
    public private(set) var starting: [Start] = []
    public private(set) var doctor: [DoctorCheck] = []
    /// The last failed action, shown until the next one succeeds.
    public private(set) var lastError: ErrorReport?
    /// The bottle Stop was pressed for, awaiting `confirmStop()` or `cancelStop()`.
    public private(set) var stopCandidate: String?
    public private(set) var recentSpecs: [String]
    /// The TTL Approve grants, from the notification or the menu; kept across launches.
    public private(set) var approveTTLSecs: UInt64

    private let manager: BottleManager
    private let poster: NotificationPosting
    private let preferences: Preferences
    private var subscriptions: [String: Subscription] = [:]

    public init(manager: BottleManager = BottleManager(), poster: NotificationPosting, preferences: Preferences = Preferences()) {
        self.manager = manager
        self.poster = poster
        self.preferences = preferences
        recentSpecs = preferences.recentSpecs
        approveTTLSecs = preferences.approveTTLSecs
    }

    public func row(_ name: String) -> Row? {
        bottles.first { $0.id == name }
    }

    /// Re-reads every bottle and follows the events of the ones not yet followed.
    public func refresh() async {
        await run {
            var rows: [Row] = []
            for info in try await manager.list() {
                let control = try? await manager.controlState(name: info.name)
                rows.append(Row(info: info, control: control, events: row(info.name)?.events ?? []))
            }
            bottles = rows
            for row in rows where subscriptions[row.id] == nil {
                await follow(row.id)
            }
        }
    }

    /// Starts the bottle.toml at `specPath`, showing each step of `up` until it is done.
    public func start(specPath: String) async {
        guard !starting.contains(where: { $0.specPath == specPath }) else { return }
        starting.append(Start(specPath: specPath, step: "Starting…"))
        let relay = ProgressRelay { [weak self] step in
            Task { @MainActor in self?.progressed(specPath, step) }
        }
        await run {
            let info = try await manager.up(specPath: specPath, progress: relay)
            preferences.rememberSpec(specPath)
            recentSpecs = preferences.recentSpecs
            await reload(info.name)
            if subscriptions[info.name] == nil { await follow(info.name) }
        }
        starting.removeAll { $0.specPath == specPath }
    }

    public func setApproveTTL(secs: UInt64) {
        preferences.approveTTLSecs = secs
        approveTTLSecs = preferences.approveTTLSecs
    }

    public func forgetRecentSpec(_ path: String) {
        preferences.forgetSpec(path)
        recentSpecs = preferences.recentSpecs
    }

    /// Stop removes the bottle, so it only asks here; `confirmStop()` does it.
    public func requestStop(_ name: String) {
        stopCandidate = name
    }

    public func cancelStop() {
        stopCandidate = nil
    }

    public func confirmStop() async {
        guard let name = stopCandidate else { return }
        stopCandidate = nil
        subscriptions.removeValue(forKey: name)?.cancel()
        await run { try await manager.down(name: name) }
        await refresh()
    }

    public func setKillSwitch(_ name: String, engaged: Bool) async {
        await run { try await manager.setKillSwitch(name: name, engaged: engaged) }
        await reload(name)
    }

    /// Approves for `approveTTLSecs`, as the notification's Approve does.
    public func approve(_ bottle: String, requestId: String) async {
        await run { try await manager.approve(name: bottle, requestId: requestId, ttlSecs: approveTTLSecs) }
        await reload(bottle)
    }

    public func deny(_ bottle: String, requestId: String) async {
        await run { try await manager.deny(name: bottle, requestId: requestId) }
        await reload(bottle)
    }

    /// What a tap on a notification's action does: Approve or Deny the request it names.
    /// Returns whether it acted (a plain tap on the banner, or one without a request, does nothing).
    @discardableResult
    public func handleNotificationResponse(actionIdentifier: String, userInfo: [AnyHashable: Any]) async -> Bool {
        guard let action = NotificationAction(rawValue: actionIdentifier),
            let bottle = userInfo[NotificationKey.bottle] as? String,
            let requestId = userInfo[NotificationKey.requestId] as? String
        else { return false }
        switch action {
        case .approve: await approve(bottle, requestId: requestId)
        case .deny: await deny(bottle, requestId: requestId)
        }
        return true
    }

    /// The bottle's logs, for the "Open Logs" window.
    public func logs(_ name: String) async -> String {
        do {
            return try await manager.logs(name: name)
        } catch {
            return ErrorReport(error).message
        }
    }

    public func runDoctor() async {
        doctor = await manager.doctor()
    }

    private func progressed(_ specPath: String, _ step: String) {
        if let i = starting.firstIndex(where: { $0.specPath == specPath }) {
            starting[i].step = step
        }
    }

    private func follow(_ name: String) async {
        let poster = poster
        let relay = EventRelay(
            onEvent: { [weak self] event in
                Task { @MainActor in await self?.apply(event) }
            },
            onNotification: { poster.post($0) },
            onClosed: { [weak self] _ in
                Task { @MainActor in self?.subscriptions[name] = nil }
            }
        )
        if let sub = try? await manager.subscribe(name: name, listener: relay) {
            subscriptions[name] = sub
        }
    }

    /// One event: into the bottle's recent events, then the row re-read when the event
    /// changes what the row shows (its state, kill switch, agent or requests).
    private func apply(_ event: BottleEvent) async {
        if let i = bottles.firstIndex(where: { $0.id == event.bottle }) {
            bottles[i].events.append(event)
            bottles[i].events.removeFirst(max(0, bottles[i].events.count - Self.maxRecentEvents))
        }
        switch event.kind {
        case .egressBlocked, .git, .apiCall: break
        case .agentState, .accessRequested, .accessDecided, .accessExpired, .policyReloaded, .killSwitch, .bottleState:
            await reload(event.bottle)
        }
    }

    /// Re-reads one bottle; a bottle that is gone leaves the list.
    private func reload(_ name: String) async {
        do {
            let info = try await manager.status(name: name)
            let control = try? await manager.controlState(name: name)
            let updated = Row(info: info, control: control, events: row(name)?.events ?? [])
            if let i = bottles.firstIndex(where: { $0.id == name }) {
                bottles[i] = updated
            } else {
                bottles.append(updated)
            }
        } catch BottleError.NotFound {
            bottles.removeAll { $0.id == name }
        } catch {
            lastError = ErrorReport(error)
        }
    }

    private func run(_ action: () async throws -> Void) async {
        do {
            try await action()
            lastError = nil
        } catch {
            lastError = ErrorReport(error)
        }
    }
}
