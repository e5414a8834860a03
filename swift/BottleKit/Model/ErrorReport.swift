// An error as the menu shows it: Rust's sentence, with the cause chain behind a
// disclosure. Only errors Rust did not word (none are expected) fall back to Swift's text.

public struct ErrorReport: Equatable, Sendable {
    public let message: String
    /// Outermost cause first; empty when there is nothing beyond the message.
    public let chain: [String]

    public init(_ error: Error) {
        switch error as? BottleError {
        case .InvalidSpec(let m, let c)?, .EngineUnavailable(let m, let c)?, .NotFound(let m, let c)?,
            .BackendUnavailable(let m, let c)?, .Runtime(let m, let c)?:
            message = m
            chain = c
        case nil:
            message = "\(error)"
            chain = []
        }
    }
}

/// The generated enum has Rust's Display as `description` but does not declare the
/// conformance; declaring it makes `"\(error)"` and `localizedDescription` the sentence.
extension BottleError: CustomStringConvertible {}
