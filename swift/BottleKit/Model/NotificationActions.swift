// The two actions an access-request notification carries, and the userInfo a
// posted notification takes along so its action can find the request again. The
// app registers them under Rust's category id (`accessRequestCategory()`); the
// model handles the response (`AppModel.handleNotificationResponse`).

public enum NotificationAction: String, CaseIterable, Sendable {
    case approve = "dev.bottle.approve"
    case deny = "dev.bottle.deny"

    public var title: String {
        switch self {
        case .approve: return "Approve"
        case .deny: return "Deny"
        }
    }
}

public enum NotificationKey {
    public static let bottle = "bottle"
    public static let requestId = "requestId"
}

extension BottleNotification {
    /// What the posted notification carries for its actions.
    public var userInfo: [String: String] {
        var info = [NotificationKey.bottle: bottle]
        if let requestId { info[NotificationKey.requestId] = requestId }
        return info
    }
}
