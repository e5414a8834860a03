// The recent events window: one bottle's latest events as Rust words them,
// newest first, updated as the subscription delivers them.

import BottleKit
import SwiftUI

struct EventsView: View {
    let model: AppModel
    let name: String?

    var body: some View {
        let events = name.flatMap { model.row($0)?.events } ?? []
        List(events.reversed(), id: \.id) { event in
            Text(event.line).font(.system(.caption, design: .monospaced)).textSelection(.enabled)
        }
        .frame(minWidth: 560, minHeight: 360)
        .navigationTitle(name.map { "Events: \($0)" } ?? "Events")
    }
}
