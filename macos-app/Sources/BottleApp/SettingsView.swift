// Settings: how long the notification's (and the menu's) Approve lets a host through.

import BottleKit
import SwiftUI

struct SettingsView: View {
    let model: AppModel
    private let choices: [(String, UInt64)] = [
        ("15 minutes", 900), ("1 hour", 3600), ("8 hours", 28_800), ("1 day", 86_400),
    ]

    var body: some View {
        Form {
            Picker(
                "Approve for",
                selection: Binding(get: { model.approveTTLSecs }, set: { model.setApproveTTL(secs: $0) })
            ) {
                ForEach(choices, id: \.1) { Text($0.0).tag($0.1) }
            }
        }
        .padding()
        .frame(width: 320)
    }
}
