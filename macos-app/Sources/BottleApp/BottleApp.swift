// The menu-bar app's entry point: a MenuBarExtra, no Dock icon (LSUIElement in
// Info.plist), one AppModel for the whole process. Views render the model and
// forward clicks; the work happens in Rust behind BottleKit.

import BottleKit
import SwiftUI

@main
struct BottleApp: App {
    @State private var model = AppModel(poster: UserNotificationPoster())

    init() {
        initLogging()
        UserNotificationPoster.requestAuthorization()
    }

    var body: some Scene {
        MenuBarExtra("bottle", systemImage: "shippingbox") {
            MenuContent(model: model)
                .task { await model.refresh() }
        }
        .menuBarExtraStyle(.window)

        Window("Doctor", id: "doctor") {
            DoctorView(model: model)
        }
        WindowGroup("Logs", id: "logs", for: String.self) { $name in
            LogsView(model: model, name: name)
        }
    }
}
