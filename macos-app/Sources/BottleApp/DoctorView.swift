// The doctor window: what Rust's doctor found, with the fix for each failure.

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
