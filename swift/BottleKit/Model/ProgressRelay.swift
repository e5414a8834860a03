// Turns Rust's progress listener interface into a closure, as EventRelay does for
// events. Rust calls it on its own thread; the closure decides where to hop.

public final class ProgressRelay: ProgressListener {
    private let step: @Sendable (String) -> Void

    public init(onStep: @escaping @Sendable (String) -> Void) {
        step = onStep
    }

    public func onStep(message: String) { step(message) }
}
