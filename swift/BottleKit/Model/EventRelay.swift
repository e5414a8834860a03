// Turns the Rust event listener interface into three closures, so the app model
// (and the tests) can subscribe without subclassing generated code. Rust calls
// these on its own threads; the closures decide where to hop.

public final class EventRelay: EventListener {
    private let event: @Sendable (BottleEvent) -> Void
    private let notification: @Sendable (BottleNotification) -> Void
    private let closed: @Sendable (String) -> Void

    public init(
        onEvent: @escaping @Sendable (BottleEvent) -> Void,
        onNotification: @escaping @Sendable (BottleNotification) -> Void,
        onClosed: @escaping @Sendable (String) -> Void
    ) {
        event = onEvent
        notification = onNotification
        closed = onClosed
    }

    public func onEvent(event: BottleEvent) { self.event(event) }
    public func onNotification(notification: BottleNotification) { self.notification(notification) }
    public func onClosed(reason: String) { closed(reason) }
}
