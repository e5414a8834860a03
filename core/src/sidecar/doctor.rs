//! `doctor`: what a bottle needs of the Docker engine, checked, each with what to do when it is
//! missing. Both backends ask the same: a smolmachines bottle's bundle runs there too, and its
//! VM boots the agent image exported from there.

use bollard::Docker;

use super::network::taken_subnets;
use crate::backend::Check;
use crate::engine::endpoint;
use crate::images;
use crate::netpool::NetPool;

pub async fn doctor(docker: &Docker, pool: &NetPool) -> Vec<Check> {
    let mut out = Vec::new();
    let at = endpoint::discover().map(|e| e.to_string()).unwrap_or_else(|e| format!("{e:#}"));
    match docker.version().await {
        Ok(v) => out.push(Check::new(
            "engine",
            true,
            format!(
                "Docker {} (API {}, {}/{}) answers at {at}",
                v.version.unwrap_or_default(),
                v.api_version.unwrap_or_default(),
                v.os.unwrap_or_default(),
                v.arch.unwrap_or_default()
            ),
            "",
        )),
        Err(e) => {
            let hint = endpoint::discover().map(|e| endpoint::socket_hint(&e.host)).unwrap_or_default();
            out.push(Check::new("engine", false, format!("no answer at {at}: {e}"), &hint));
            return out;
        }
    }
    let agent = images::agent_tag();
    out.push(Check::new(
        "agent image",
        images::image_exists(docker, &agent).await,
        agent,
        &format!(
            "the first `up` builds it with the engine from {}; without a registry, run that `up` as root on Linux once (it makes the base with debootstrap)",
            images::agent_base()
        ),
    ));
    let bundles = docker
        .list_images(Some(
            bollard::query_parameters::ListImagesOptionsBuilder::default()
                .filters(&std::collections::HashMap::from([("reference", vec![images::BUNDLE_REPO])]))
                .build(),
        ))
        .await
        .map(|l| l.len())
        .unwrap_or(0);
    out.push(Check::new(
        "bundle image",
        bundles > 0,
        format!("{bundles} {} image(s) present", images::BUNDLE_REPO),
        "the first `up` builds it from the bottle-bundle binary",
    ));
    match taken_subnets(docker).await {
        Ok(taken) => {
            let free = pool.free(&taken).count();
            out.push(Check::new(
                "subnet pool",
                free >= 2,
                format!("{free} free /{} subnets in {} (each bottle takes 2)", pool.prefix, pool.pool),
                "set BOTTLE_SUBNET_POOL to a range no network or route uses, or `down` unused bottles",
            ));
        }
        Err(e) => out.push(Check::new("subnet pool", false, format!("{e:#}"), "check the engine")),
    }
    out
}
