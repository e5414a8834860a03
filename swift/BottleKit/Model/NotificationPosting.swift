// Where the app model sends the notifications Rust decided on. The app posts
// them with UNUserNotificationCenter; tests record them. Nothing here decides
// whether or what to notify: that is `NotificationPolicy` in ffi/src/notify.rs.

public protocol NotificationPosting: Sendable {
    func post(_ notification: BottleNotification)
}
