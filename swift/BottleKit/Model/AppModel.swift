// The menu-bar app's state: what the views render, refreshed from Rust. Every
// action forwards to `BottleManager`; every change that arrives (an event, a
// finished call) re-reads the affected bottle from Rust instead of patching
// local state, so the app cannot drift from what the core reports.
//
// Linux CI type-checks this file against the generated bindings but does not
// link it (Debian's Swift cannot link Observation).

import Foundation
import Observation

@MainActor
@Observable
public final class AppModel {
    public struct Row: Identifiable, Equatable {
        public var id: String { info.name }
        public var info: BottleInfo
        public var pending: [PendingRequest]
    }

    public private(set) var bottles: [Row] = []
    public private(set) var doctor: [DoctorCheck] = []
    /// The last failed action, shown until the next one succeeds.
    public private(set) var lastError: String?

    @ObservationIgnored private let manager: BottleManager
    @ObservationIgnored private let poster: NotificationPosting
    @ObservationIgnored private var subscriptions: [String: Subscription] = [:]

    public init(manager: BottleManager = BottleManager(), poster: NotificationPosting) {
        self.manager = manager
        self.poster = poster
    }

    /// Re-reads every bottle and follows the events of the ones not yet followed.
    public func refresh() async {
        await run {
            let all = try await manager.list()
            var rows: [Row] = []
            for info in all {
                let pending = (try? await manager.pending(name: info.name)) ?? []
                rows.append(Row(info: info, pending: pending))
            }
            bottles = rows
            for row in rows where subscriptions[row.id] == nil {
                await follow(row.id)
            }
        }
    }

    public func start(specPath: String) async {
        await run { _ = try await manager.up(specPath: specPath) }
        await refresh()
    }

    public func stop(_ name: String) async {
        subscriptions.removeValue(forKey: name)?.cancel()
        await run { try await manager.down(name: name) }
        await refresh()
    }

    public func approve(_ bottle: String, _ request: PendingRequest) async {
        await run { try await manager.approve(name: bottle, requestId: request.id, ttlSecs: nil) }
        await reload(bottle)
    }

    public func deny(_ bottle: String, _ request: PendingRequest) async {
        await run { try await manager.deny(name: bottle, requestId: request.id) }
        await reload(bottle)
    }

    /// The bottle's logs, for the "Open Logs" window.
    public func logs(_ name: String) async -> String {
        do {
            return try await manager.logs(name: name)
        } catch {
            return "\(error)"
        }
    }

    public func runDoctor() async {
        doctor = await manager.doctor()
    }

    private func follow(_ name: String) async {
        let poster = poster
        let relay = EventRelay(
            onEvent: { [weak self] event in
                Task { @MainActor in await self?.reload(event.bottle) }
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

    /// Re-reads one bottle; a bottle that is gone leaves the list.
    private func reload(_ name: String) async {
        do {
            let info = try await manager.status(name: name)
            let pending = (try? await manager.pending(name: name)) ?? []
            let row = Row(info: info, pending: pending)
            if let i = bottles.firstIndex(where: { $0.id == name }) {
                bottles[i] = row
            } else {
                bottles.append(row)
            }
        } catch BottleError.NotFound {
            bottles.removeAll { $0.id == name }
        } catch {
            lastError = "\(error)"
        }
    }

    private func run(_ action: () async throws -> Void) async {
        do {
            try await action()
            lastError = nil
        } catch {
            lastError = "\(error)"
        }
    }
}
