// Shows what `doctor` found, as Rust reports it, with the fix for each failure.

import BottleKit
import SwiftUI

struct DoctorView: View {
    let model: AppModel

    var body: some View {
        List(model.doctor, id: \.name) { check in
            VStack(alignment: .leading) {
                Label(check.name, systemImage: check.ok ? "checkmark.circle" : "exclamationmark.triangle")
                    .foregroundStyle(check.ok ? .green : .red)
                Text(check.detail).font(.caption)
                if !check.fix.isEmpty {
                    Text("Fix: \(check.fix)").font(.caption).foregroundStyle(.secondary)
                }
            }
        }
        .frame(minWidth: 420, minHeight: 300)
        .task { await model.runDoctor() }
        .toolbar { Button("Run again") { Task { await model.runDoctor() } } }
    }
}

struct LogsView: View {
    /// The bottle whose logs the window shows, set by "Open Logs" before opening it.
    @MainActor static var selected: String?
    let model: AppModel
    @State private var text = ""

    var body: some View {
        ScrollView {
            Text(text).font(.system(.caption, design: .monospaced)).textSelection(.enabled)
                .frame(maxWidth: .infinity, alignment: .leading)
        }
        .frame(minWidth: 560, minHeight: 360)
        .task(id: LogsView.selected) {
            guard let name = LogsView.selected else { return }
            text = await model.logs(name)
        }
    }
}
