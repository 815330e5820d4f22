//! Node configuration: one TOML file (`youke.toml` in the data directory, written by
//! `youke init`), overridable by environment variables (`YOUKE_*`) and command-line flags.
//! With no file, `youke serve` runs a school node on defaults.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use youke_federation::Tier;
use youke_federation::rate::{RateSchedule, parse_utc_offset};

pub const CONFIG_FILE: &str = "youke.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{name}={value:?} is invalid: {message}")]
    Env { name: &'static str, value: String, message: String },
    #[error("cannot write config {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// school, city or province.
    pub role: Tier,
    /// The name shown in portals and to the parent, e.g. 石家庄市第一中学.
    pub name: String,
    /// Where the portal and API listen.
    pub http: SocketAddr,
    /// Where the federation endpoint (QUIC, UDP) listens.
    pub quic: SocketAddr,
    /// The parent's federation address, HOST:PORT. Not set for a province.
    pub parent: Option<String>,
    /// How links are secured: `federation` (certificates from the province's root, issued at
    /// `youke enroll`) or `dev-pinned` (self-signed certificates pinned on first use; for
    /// development and trials only, never in production).
    pub trust: TrustMode,
    pub link: LinkConfig,
    pub limits: Limits,
    pub media: MediaConfig,
    pub import: ImportConfig,
    pub ftp: FtpConfig,
    pub portal: PortalConfig,
    pub review: ReviewConfig,
    /// Assumptions of the storage forecast (admin console, `youke forecast`).
    pub forecast: ForecastConfig,
    /// Media blobs on S3-compatible object storage (a SeaweedFS cluster) instead of this
    /// machine's disk; docs/SCALING.md. The secret may be given as YOUKE_S3_SECRET_ACCESS_KEY.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_store: Option<youke_federation::blobs::remote::S3Settings>,
}

/// Review (审核) of lessons shared to this node's tier.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// Approve every lesson shared to this tier as it arrives, without a reviewer (default:
    /// false, a reviewer approves or rejects each one in the review queue).
    pub auto_approve: bool,
}

/// The portal's access rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalConfig {
    /// Whether people who have not signed in may watch and search (公开浏览). Uploading, sharing,
    /// rating, reviewing and administration always need an account.
    pub anonymous_viewing: bool,
    /// Mark the session cookie `Secure` (only sent over HTTPS): set this when the portal is
    /// served through an HTTPS reverse proxy.
    pub secure_cookies: bool,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig { anonymous_viewing: true, secure_cookies: false }
    }
}

/// The assumptions an admin sets in `[forecast]`, defaulting to the example of seed 000.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    /// D: streams recorded per lesson (teacher close-up, wide, students, slides…).
    pub streams_per_lesson: f64,
    /// B: recording classrooms (录播教室) feeding this node.
    pub classrooms: f64,
    /// C: bit rate of one stream, kbit/s.
    pub kbit_per_stream: f64,
    /// E: lessons one classroom records on a school day.
    pub lessons_per_day: f64,
    /// F: minutes a lesson.
    pub minutes_per_lesson: f64,
    /// G: school days in a semester.
    pub days: f64,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig { streams_per_lesson: 4.0, classrooms: 20.0, kbit_per_stream: 4096.0, lessons_per_day: 6.0, minutes_per_lesson: 45.0, days: 100.0 }
    }
}

/// The FTP endpoint recording hosts publish to; off unless `listen`, `user` and `password`
/// are all set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FtpConfig {
    pub listen: Option<SocketAddr>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Ports for passive-mode data connections, first and last.
    pub passive_ports: (u16, u16),
    /// Seconds an unfinished upload may sit untouched before it is quarantined.
    pub stale_secs: u64,
}

impl Default for FtpConfig {
    fn default() -> Self {
        FtpConfig { listen: None, user: None, password: None, passive_ports: (50000, 50100), stale_secs: 3600 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportConfig {
    /// A folder watched for finished recordings (relative to the data directory unless
    /// absolute); unset to watch none.
    pub watch_dir: Option<String>,
    /// Lesson fields from file names, e.g. "{grade}_{subject}_{teacher}_{title}"; a JSON
    /// sidecar beside the file takes precedence.
    pub name_pattern: Option<String>,
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig { watch_dir: Some("import".into()), name_pattern: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Transcode every recording this node holds to an HLS ladder (one job at a time, at
    /// lowered priority).
    pub transcode: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig { transcode: true }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustMode {
    #[default]
    Federation,
    DevPinned,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkConfig {
    /// Rate schedule for media going to the parent, e.g. "2Mbit/s" or
    /// "08:00-17:30 2Mbit/s, otherwise unlimited"; unlimited when unset. Changeable at runtime
    /// with `youke link rate` or `PUT /api/v1/link`.
    pub upload_rate: Option<String>,
    /// The local time zone of the schedule's windows, as a UTC offset.
    pub utc_offset: String,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig { upload_rate: None, utc_offset: "+08:00".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest media file accepted from a child or an import, in bytes.
    pub max_blob_bytes: u64,
    /// Disk space for lessons watched through the parent (pull-through cache), in bytes.
    pub cache_bytes: u64,
    /// Memory for HLS ladder files served recently (segments a class is watching), in bytes.
    pub hls_cache_bytes: u64,
    /// Portal connections open at once from one address (an IPv6 client by its /64); more are
    /// answered 503 and closed. A school behind one NAT address counts as one.
    pub connections_per_address: usize,
    /// Portal connections open at once in all (also bounded by the process's file limit).
    pub max_connections: usize,
    /// Disk space uploads must leave free, in percent of the disk: an upload whose declared
    /// size does not fit in the free space minus this reserve is refused before it starts.
    pub disk_reserve_percent: u8,
    /// The quarantine (files the import could not take) keeps at most this many bytes and
    /// files; the oldest are deleted first.
    pub quarantine_bytes: u64,
    pub quarantine_files: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            role: Tier::School,
            name: "学校节点".into(),
            http: SocketAddr::from(([0, 0, 0, 0], 8080)),
            quic: SocketAddr::from(([0, 0, 0, 0], 4433)),
            parent: None,
            link: LinkConfig::default(),
            limits: Limits::default(),
            media: MediaConfig::default(),
            import: ImportConfig::default(),
            ftp: FtpConfig::default(),
            portal: PortalConfig::default(),
            review: ReviewConfig::default(),
            forecast: Default::default(),
            trust: TrustMode::Federation,
            object_store: None,
        }
    }
}


impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_blob_bytes: 8 << 30,
            cache_bytes: 100 << 30,
            hls_cache_bytes: 256 << 20,
            connections_per_address: 128,
            max_connections: 8192,
            disk_reserve_percent: 5,
            quarantine_bytes: 50 << 30,
            quarantine_files: 500,
        }
    }
}

/// Where a node's config file is: `$YOUKE_CONFIG` when set (the Debian package sets
/// `/etc/youke/youke.toml`), else `youke.toml` in the data directory.
/// A symbolic link there is followed (the package links `/var/lib/youke/youke.toml` to
/// `/etc/youke/youke.toml`), so that writing the config replaces its target, not the link.
pub fn config_path(data_dir: &Path) -> PathBuf {
    let path = match std::env::var_os("YOUKE_CONFIG").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => data_dir.join(CONFIG_FILE),
    };
    match std::fs::read_link(&path) {
        Ok(target) => path.parent().map(|d| d.join(&target)).unwrap_or(target),
        Err(_) => path,
    }
}

impl Config {
    /// The object storage settings with the secret from YOUKE_S3_SECRET_ACCESS_KEY when the
    /// file leaves it out.
    pub fn object_store_settings(&self) -> Option<youke_federation::blobs::remote::S3Settings> {
        let mut s = self.object_store.clone()?;
        if s.secret_access_key.is_empty()
            && let Ok(v) = std::env::var("YOUKE_S3_SECRET_ACCESS_KEY")
        {
            s.secret_access_key = v;
        }
        Some(s)
    }

    /// Reads the config file ([`config_path`]; defaults if absent), then applies `YOUKE_*`
    /// variables.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = config_path(data_dir);
        let mut config = match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text).map_err(|message| ConfigError::Invalid { path: path.clone(), message })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        Ok(config)
    }

    /// Parses the TOML text of a config file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name must not be empty".into());
        }
        if self.role == Tier::Province && self.parent.is_some() {
            return Err("a province node has no parent; remove `parent`".into());
        }
        if let Some(rate) = &self.link.upload_rate {
            rate.parse::<RateSchedule>().map_err(|e| format!("link.upload_rate: {e}"))?;
        }
        parse_utc_offset(&self.link.utc_offset).map_err(|e| format!("link.utc_offset: {e}"))?;
        if self.ftp.listen.is_some() && (self.ftp.user.as_deref().unwrap_or("").is_empty() || self.ftp.password.as_deref().unwrap_or("").len() < 8) {
            return Err("ftp: set user and a password of at least 8 characters, or remove listen".into());
        }
        if self.ftp.passive_ports.0 > self.ftp.passive_ports.1 || self.ftp.stale_secs == 0 {
            return Err("ftp.passive_ports must be [first, last] and ftp.stale_secs more than 0".into());
        }
        if let Some(o) = &self.object_store {
            // The secret may come from the environment at start (never written back here).
            let mut o = o.clone();
            if o.secret_access_key.is_empty() {
                o.secret_access_key = "from-environment".into();
            }
            o.check().map_err(|e| format!("object_store: {e}"))?;
        }
        if let Some(p) = &self.import.name_pattern {
            p.parse::<crate::name_pattern::NamePattern>().map_err(|e| format!("import.name_pattern: {e}"))?;
        }
        let l = &self.limits;
        if l.connections_per_address == 0 || l.max_connections == 0 {
            return Err("limits.connections_per_address and limits.max_connections must be more than 0".into());
        }
        if l.disk_reserve_percent > 90 {
            return Err("limits.disk_reserve_percent must be from 0 to 90".into());
        }
        let f = &self.forecast;
        for (name, v) in [
            ("streams_per_lesson", f.streams_per_lesson),
            ("classrooms", f.classrooms),
            ("kbit_per_stream", f.kbit_per_stream),
            ("lessons_per_day", f.lessons_per_day),
            ("minutes_per_lesson", f.minutes_per_lesson),
            ("days", f.days),
        ] {
            if !v.is_finite() || !(0.0..=1e6).contains(&v) {
                return Err(format!("forecast.{name} must be a number from 0 to 1000000"));
            }
        }
        Ok(())
    }

    /// Applies environment overrides; `get` looks a variable up.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn addr(name: &'static str, v: String) -> Result<SocketAddr, ConfigError> {
            v.parse().map_err(|e: std::net::AddrParseError| ConfigError::Env { name, value: v, message: e.to_string() })
        }
        if let Some(v) = get("YOUKE_ROLE") {
            self.role = v.parse().map_err(|e: youke_federation::tier::UnknownTier| ConfigError::Env { name: "YOUKE_ROLE", value: v, message: e.to_string() })?;
        }
        if let Some(v) = get("YOUKE_NAME") {
            self.name = v;
        }
        if let Some(v) = get("YOUKE_HTTP") {
            self.http = addr("YOUKE_HTTP", v)?;
        }
        if let Some(v) = get("YOUKE_QUIC") {
            self.quic = addr("YOUKE_QUIC", v)?;
        }
        if let Some(v) = get("YOUKE_PARENT") {
            self.parent = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = get("YOUKE_TRUST") {
            self.trust = match v.as_str() {
                "federation" => TrustMode::Federation,
                "dev-pinned" => TrustMode::DevPinned,
                _ => return Err(ConfigError::Env { name: "YOUKE_TRUST", value: v, message: "expected federation or dev-pinned".into() }),
            };
        }
        if let Some(v) = get("YOUKE_UPLOAD_RATE") {
            v.parse::<RateSchedule>().map_err(|message| ConfigError::Env { name: "YOUKE_UPLOAD_RATE", value: v.clone(), message })?;
            self.link.upload_rate = (!v.is_empty()).then_some(v);
        }
        Ok(())
    }

    /// The configured media rate schedule (unlimited when unset).
    pub fn upload_schedule(&self) -> RateSchedule {
        self.link.upload_rate.as_deref().and_then(|r| r.parse().ok()).unwrap_or_default()
    }

    /// The watched import folder, if any.
    pub fn watch_dir(&self, data_dir: &Path) -> Option<PathBuf> {
        self.import.watch_dir.as_deref().filter(|d| !d.is_empty()).map(|d| data_dir.join(d))
    }

    /// The schedule's UTC offset in seconds.
    pub fn utc_offset_secs(&self) -> i32 {
        parse_utc_offset(&self.link.utc_offset).unwrap_or(8 * 3600)
    }

    /// Writes the config file ([`config_path`]; temp file, fsync, rename).
    pub fn save(&self, data_dir: &Path) -> Result<PathBuf, ConfigError> {
        use std::io::Write;
        let path = config_path(data_dir);
        let body = toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid { path: path.clone(), message: e.to_string() })?;
        let text = format!("# Youke node configuration, written by `youke init`.\n# Every key is explained in appliance-image/youke.toml.\n\n{body}");
        let tmp = path.with_extension("toml.tmp");
        let werr = |source| ConfigError::Write { path: path.clone(), source };
        let mut f = std::fs::File::create(&tmp).map_err(werr)?;
        f.write_all(text.as_bytes()).map_err(werr)?;
        f.sync_all().map_err(werr)?;
        std::fs::rename(&tmp, &path).map_err(werr)?;
        Ok(path)
    }
}

/// The fuzz target of the config parser (`fuzz/fuzz_targets/config.rs`, and the seed corpus
/// replayed by the tests): any text parses or is refused with a message, and what parses saves
/// and parses back to the same config.
#[doc(hidden)]
#[allow(clippy::expect_used)] // a fuzz target reports a broken property by panicking
pub fn fuzz_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = Config::parse(text) {
        let saved = toml::to_string_pretty(&c).expect("a parsed config serializes");
        assert_eq!(Config::parse(&saved).as_ref(), Ok(&c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linked_config_is_read_and_written_at_its_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (etc, data) = (dir.path().join("etc"), dir.path().join("data"));
        std::fs::create_dir_all(&etc).expect("etc");
        std::fs::create_dir_all(&data).expect("data");
        std::os::unix::fs::symlink(etc.join(CONFIG_FILE), data.join(CONFIG_FILE)).expect("link");
        assert_eq!(config_path(&data), etc.join(CONFIG_FILE), "a dangling link still names its target");
        let c = Config { name: "石家庄市第一中学".into(), ..Config::default() };
        c.save(&data).expect("save");
        assert!(std::fs::symlink_metadata(data.join(CONFIG_FILE)).expect("link").file_type().is_symlink(), "the link stays");
        assert!(std::fs::read_to_string(etc.join(CONFIG_FILE)).expect("target").contains("石家庄市第一中学"));
        assert_eq!(Config::load(&data).expect("load").name, "石家庄市第一中学");
    }

    #[test]
    fn the_fuzz_seed_corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/config");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("the seed corpus is committed") {
            fuzz_parse(&std::fs::read(entry.expect("entry").path()).expect("read"));
            n += 1;
        }
        assert!(n >= 4);
        assert!(Config::parse(&std::fs::read_to_string(dir.join("city.toml")).expect("read")).is_ok());
        assert!(Config::parse(&std::fs::read_to_string(dir.join("bad.toml")).expect("read")).is_err());
    }

    #[test]
    fn shipped_default_config_parses_to_the_defaults() {
        let text = include_str!("../../appliance-image/youke.toml");
        assert_eq!(Config::parse(text).expect("parses"), Config::default());
    }

    #[test]
    fn the_shipped_object_store_example_parses_and_bad_settings_are_named() {
        let text = include_str!("../../appliance-image/youke.toml");
        let section: String = text.split("# [object_store]").nth(1).expect("the example").lines().map(|l| l.strip_prefix("# ").unwrap_or(l)).collect::<Vec<_>>().join("\n");
        let c = Config::parse(&format!("[object_store]{section}")).expect("parses");
        let o = c.object_store.expect("set");
        assert_eq!((o.endpoint.as_str(), o.bucket.as_str(), o.prefix.as_str()), ("http://10.20.0.3:8333", "youke", "河北省"));
        // The secret may be left to the environment; a bad endpoint is named.
        assert!(Config::parse("[object_store]\nendpoint = \"http://s3:8333\"\nbucket = \"b\"\naccess_key_id = \"k\"").is_ok());
        let err = Config::parse("[object_store]\nendpoint = \"s3:8333\"\nbucket = \"b\"\naccess_key_id = \"k\"").unwrap_err();
        assert!(err.contains("object_store") && err.contains("http://"), "{err}");
    }

    #[test]
    fn upload_rate_takes_a_schedule() {
        let c = Config::parse("[link]\nupload_rate = \"08:00-17:30 2Mbit/s, otherwise unlimited\"").expect("parses");
        assert_eq!(c.upload_schedule().to_string(), "08:00-17:30 2Mbit/s, otherwise unlimited");
        assert_eq!(c.utc_offset_secs(), 8 * 3600);
        let err = Config::parse("[link]\nupload_rate = \"08:00-17:30 fast\"").unwrap_err();
        assert!(err.contains("link.upload_rate"), "{err}");
        assert!(Config::parse("[link]\nutc_offset = \"Beijing\"").unwrap_err().contains("utc_offset"));
    }

    #[test]
    fn bad_files_and_env_are_clear_errors() {
        assert!(Config::parse("role = \"county\"").is_err());
        assert!(Config::parse("rol = \"city\"").unwrap_err().contains("rol"));
        assert!(Config::parse("role = \"province\"\nparent = \"x:1\"").is_err());
        let mut c = Config::default();
        let err = c.apply_env(|k| (k == "YOUKE_HTTP").then(|| "nonsense".to_string())).unwrap_err();
        assert!(err.to_string().contains("YOUKE_HTTP"));
        c.apply_env(|k| (k == "YOUKE_PARENT").then(|| "127.0.0.1:9".to_string())).expect("ok");
        assert_eq!(c.parent.as_deref(), Some("127.0.0.1:9"));
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Config { role: Tier::City, name: "石家庄市".into(), parent: Some("127.0.0.1:4433".into()), ..Config::default() };
        c.save(dir.path()).expect("save");
        let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).expect("read");
        assert_eq!(Config::parse(&text).expect("parse"), c);
    }
}
