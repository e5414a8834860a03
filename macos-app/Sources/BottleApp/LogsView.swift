// The logs window: a bottle's logs as Rust returns them; one window per bottle.

import BottleKit
import SwiftUI

/// One bottle's logs, as Rust returns them; one window per bottle.
struct LogsView: View {
    let model: AppModel
    let name: String?
    @State private var text = ""

    var body: some View {
        ScrollView {
            Text(text).font(.system(.caption, design: .monospaced)).textSelection(.enabled)
                .frame(maxWidth: .infinity, alignment: .leading)
        }
        .frame(minWidth: 560, minHeight: 360)
        .navigationTitle(name.map { "Logs: \($0)" } ?? "Logs")
        .task(id: name) {
            guard let name else { return }
            text = await model.logs(name)
        }
        .toolbar { Button("Reload") { Task { if let name { text = await model.logs(name) } } } }
    }
}
