//! The smolmachines backend: an agent in a smolvm microVM whose only allowed
//! destination is the bottle's bundle.
//!
//! Everything up to the smolvm process boundary lives here: the Smolfile the VM
//! is created from, the version gate that refuses a smolvm whose allowlist is not
//! enforced, the driver that runs the `smolvm` binary (with a timeout on every
//! call), the parsers for its JSON, the host-route preflight and the allowlist
//! status. The bundle container itself is placed by the code the Docker backend
//! uses (`crate::sidecar`), through [`host::DockerHost`]; the
//! [`backend::HostSide`] seam lets tests drive the VM side alone.

pub mod allowlist;
pub mod backend;
pub mod driver;
pub mod egress;
pub mod host;
pub mod image;
pub mod name;
pub mod preflight;
pub mod smolfile;
pub mod status;
pub mod version;

pub use allowlist::{NetBackend, SmolAllowlistStatus, StartCheck};
pub use backend::{BundleEndpoint, HostSide, SmolmachinesBackend};
pub use driver::{CreateRequest, Launch, Smolvm, SmolvmError};
pub use egress::{EgressDenial, EgressTracker};
pub use host::DockerHost;
pub use name::MachineName;
pub use preflight::check_bundle_reachable;
pub use smolfile::{AllowList, BundleAddr, Smolfile, SmolfileInput, VmImage};
pub use status::{MachineState, MachineStatus};
pub use version::Version;
