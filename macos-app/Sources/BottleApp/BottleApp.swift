// The menu-bar app's entry point: a MenuBarExtra, no Dock icon (LSUIElement in
// Info.plist), one AppModel for the whole process. Views render the model and
// forward clicks; the work happens in Rust behind BottleKit. The model refreshes
// at launch, so its event subscriptions run (and notify) before the menu is opened.

import BottleKit
import SwiftUI

@main
struct BottleApp: App {
    @State private var model: AppModel
    private let responder = NotificationResponder()

    init() {
        initLogging()
        let model = AppModel(poster: UserNotificationPoster())
        _model = State(initialValue: model)
        responder.model = model
        UserNotificationPoster.setUp(delegate: responder)
        Task { await model.refresh() }
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
        WindowGroup("Events", id: "events", for: String.self) { $name in
            EventsView(model: model, name: name)
        }
        Settings {
            SettingsView(model: model)
        }
    }
}
