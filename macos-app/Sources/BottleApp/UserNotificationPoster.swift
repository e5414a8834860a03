// Posts, word for word, the notifications Rust decided on (ffi/src/notify.rs).
// The identifier is Rust's per-bottle-per-destination key, so a newer banner
// replaces an older one instead of piling up. An access request is posted under
// Rust's category, which carries Approve and Deny; a tap on either goes to the
// model (`handleNotificationResponse`), which decides with the TTL from settings.
// Needs a real .app bundle.

import BottleKit
import UserNotifications

struct UserNotificationPoster: NotificationPosting {
    /// Asks to notify, and registers the access-request category with its two actions.
    static func setUp(delegate: UNUserNotificationCenterDelegate) {
        let center = UNUserNotificationCenter.current()
        center.delegate = delegate
        let actions = NotificationAction.allCases.map {
            UNNotificationAction(identifier: $0.rawValue, title: $0.title, options: $0 == .deny ? [.destructive] : [])
        }
        let category = UNNotificationCategory(
            identifier: accessRequestCategory(), actions: actions, intentIdentifiers: [], options: [])
        center.setNotificationCategories([category])
        center.requestAuthorization(options: [.alert, .sound]) { _, _ in }
    }

    func post(_ notification: BottleNotification) {
        let content = UNMutableNotificationContent()
        content.title = notification.title
        content.body = notification.body
        content.threadIdentifier = notification.bottle
        content.categoryIdentifier = notification.category ?? ""
        content.userInfo = notification.userInfo
        let request = UNNotificationRequest(identifier: notification.id, content: content, trigger: nil)
        UNUserNotificationCenter.current().add(request)
    }
}

/// Hands a tapped action to the model; shows banners even while the menu is open.
final class NotificationResponder: NSObject, UNUserNotificationCenterDelegate {
    weak var model: AppModel?

    func userNotificationCenter(
        _ center: UNUserNotificationCenter, didReceive response: UNNotificationResponse
    ) async {
        let info = response.notification.request.content.userInfo
        await model?.handleNotificationResponse(actionIdentifier: response.actionIdentifier, userInfo: info)
    }

    func userNotificationCenter(
        _ center: UNUserNotificationCenter, willPresent notification: UNNotification
    ) async -> UNNotificationPresentationOptions {
        [.banner, .sound]
    }
}
