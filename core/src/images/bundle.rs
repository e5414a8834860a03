//! The bundle image: `FROM scratch` + the static `bottle-bundle` binary + CA certificates.

use bollard::Docker;

use super::{ImageFile, ensure_scratch_image, static_bin::static_binary};
use crate::backend::Progress;

const DOCKERFILE: &str = include_str!("../../../images/bundle/Dockerfile");
pub const BUNDLE_REPO: &str = "bottle-bundle";
/// Env: path to a prebuilt static `bottle-bundle` binary.
pub const BUNDLE_BIN_ENV: &str = "BOTTLE_BUNDLE_BIN";
const HOST_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Returns the bundle image's tag, building the binary and the image as needed.
pub async fn ensure_bundle_image(docker: &Docker, progress: &dyn Progress) -> anyhow::Result<String> {
    let binary = static_binary("bottle-bundle", BUNDLE_BIN_ENV, progress).await?;
    let ca = tokio::fs::read(HOST_CA_FILE).await.unwrap_or_default();
    let files = vec![
        ImageFile::exec("bottle-bundle", binary),
        ImageFile::data("ca-certificates.crt", ca),
        ImageFile::dir("rootfs/", 0o755),
        ImageFile::dir("rootfs/tmp/", 0o1777),
    ];
    ensure_scratch_image(docker, BUNDLE_REPO, DOCKERFILE, files, progress).await
}
