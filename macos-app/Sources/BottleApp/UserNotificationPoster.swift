// Posts, word for word, the notifications Rust decided on (ffi/src/notify.rs).
// The identifier is Rust's per-bottle-per-destination key, so a newer banner
// replaces an older one instead of piling up. Needs a real .app bundle.

import BottleKit
import UserNotifications

struct UserNotificationPoster: NotificationPosting {
    static func requestAuthorization() {
        UNUserNotificationCenter.current().requestAuthorization(options: [.alert, .sound]) { _, _ in }
    }

    func post(_ notification: BottleNotification) {
        let content = UNMutableNotificationContent()
        content.title = notification.title
        content.body = notification.body
        content.threadIdentifier = notification.bottle
        let request = UNNotificationRequest(identifier: notification.id, content: content, trigger: nil)
        UNUserNotificationCenter.current().add(request)
    }
}
