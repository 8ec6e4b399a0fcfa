//! What the runtime spec has no field for travels in annotations (see `model::oci`): their
//! names, in one place for both directions.

/// `--network`, for a config.json.
pub const ANNOTATION_NETWORK: &str = "org.minibox.network";
/// `-p`, for a config.json.
pub const ANNOTATION_PORTS: &str = "org.minibox.ports";
/// The seccomp profile's name, for `--explain`, `ps` and `inspect`.
pub const ANNOTATION_SECCOMP: &str = "org.minibox.seccomp";
/// `--init`: `true` runs a tiny init as PID 1, with process.args as its child.
pub const ANNOTATION_INIT: &str = "org.minibox.init";
/// `--ip`, `--dns`, `--add-host`, `--network-alias`, for a config.json.
pub const ANNOTATION_IP: &str = "org.minibox.ip";
pub const ANNOTATION_DNS: &str = "org.minibox.dns";
pub const ANNOTATION_ADD_HOSTS: &str = "org.minibox.add-hosts";
pub const ANNOTATION_ALIASES: &str = "org.minibox.network-aliases";
pub const KNOWN_ANNOTATIONS: [&str; 8] = [
    ANNOTATION_SECCOMP,
    ANNOTATION_INIT,
    ANNOTATION_NETWORK,
    ANNOTATION_PORTS,
    ANNOTATION_IP,
    ANNOTATION_DNS,
    ANNOTATION_ADD_HOSTS,
    ANNOTATION_ALIASES,
];

/// The image a container is made from (`hello:1`), its id, its layer directories (a JSON
/// array, top first; `root.path` is the first), its stop signal and exposed ports.
pub const ANNOTATION_IMAGE: &str = "org.minibox.image";
pub const ANNOTATION_IMAGE_ID: &str = "org.minibox.image.id";
pub const ANNOTATION_IMAGE_LAYERS: &str = "org.minibox.image.layers";
pub const ANNOTATION_STOP_SIGNAL: &str = "org.minibox.image.stop-signal";
pub const ANNOTATION_EXPOSED_PORTS: &str = "org.minibox.image.exposed-ports";
pub const IMAGE_ANNOTATIONS: [&str; 5] = [
    ANNOTATION_IMAGE,
    ANNOTATION_IMAGE_ID,
    ANNOTATION_IMAGE_LAYERS,
    ANNOTATION_STOP_SIGNAL,
    ANNOTATION_EXPOSED_PORTS,
];
