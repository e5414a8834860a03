// What the app remembers between launches: the TTL the notification's Approve
// grants, and the bottle.toml files recently started. Kept in UserDefaults, which
// Foundation has on Linux too, so the tests use a real store under a suite of
// their own instead of a stand-in.

import Foundation

public final class Preferences: @unchecked Sendable {
    /// How many bottle.toml files the menu offers to start again.
    public static let maxRecentSpecs = 8
    /// Approve grants an hour unless the user chose otherwise.
    public static let defaultApproveTTLSecs: UInt64 = 3600

    private let defaults: UserDefaults
    private enum Key {
        static let approveTTL = "approveTTLSecs"
        static let recentSpecs = "recentSpecs"
    }

    public init(defaults: UserDefaults = .standard) {
        self.defaults = defaults
    }

    /// The TTL of a grant made from a notification's Approve (and the menu's); at least a second.
    public var approveTTLSecs: UInt64 {
        get {
            let stored = defaults.integer(forKey: Key.approveTTL)
            return stored > 0 ? UInt64(stored) : Self.defaultApproveTTLSecs
        }
        set { defaults.set(Int(max(newValue, 1)), forKey: Key.approveTTL) }
    }

    /// Most recent first, without repeats.
    public var recentSpecs: [String] {
        defaults.stringArray(forKey: Key.recentSpecs) ?? []
    }

    public func rememberSpec(_ path: String) {
        let list = [path] + recentSpecs.filter { $0 != path }
        defaults.set(Array(list.prefix(Self.maxRecentSpecs)), forKey: Key.recentSpecs)
    }

    public func forgetSpec(_ path: String) {
        defaults.set(recentSpecs.filter { $0 != path }, forKey: Key.recentSpecs)
    }
}
