//! bottle's FFI: the menu-bar app's only door into bottle-core.
//!
//! A thin uniffi layer (proc-macros only, so no UDL file can drift from the
//! code): every call goes through the core's front door (`bottle_core::bottles`),
//! as the CLI's do, and every
//! decision the app shows (errors, notification wording and coalescing) is made
//! here, in Rust, where it is unit-tested. Swift renders and forwards.

uniffi::setup_scaffolding!();

mod error;
mod events;
mod logging;
mod manager;
mod notify;
mod progress;
mod types;

pub use error::BottleError;
pub use events::{EventListener, Subscription};
pub use logging::init_logging;
pub use manager::BottleManager;
pub use notify::{
    ACCESS_REQUEST_CATEGORY, BottleNotification, COALESCE_WINDOW, NotificationPolicy, access_request_category,
};
pub use progress::ProgressListener;
pub use types::{
    AgentState, AllowlistInfo, AllowlistVerdict, BottleEvent, BottleInfo, BottleState, ControlState, DoctorCheck,
    EventKind, GitOperation, PendingRequest, VmmInfo, bottle_state_word,
};
