//! swtpm's `socket` command line, the subset QEMU's and libvirt's documentation use:
//! `--tpm2 --tpmstate dir=D --ctrl type=unixio,path=S --server type=tcp,port=P
//! --flags not-need-init,startup-clear --pid file=F --log file=L -d`, plus `--key file=K`
//! (the key that seals the state folder; swtpm's option for its state encryption key) and
//! `--migration-key file=K` (seals the state blobs; the state key when absent).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// The raw options, as clap reads them.
#[derive(clap::Args, Debug, Default)]
pub struct SocketArgs {
    /// Serve a TPM 2.0 (required: vtpm-sim implements TPM 2.0 only).
    #[arg(long)]
    pub tpm2: bool,
    /// dir=D[,mode=M]: the state folder (sealed with --key).
    #[arg(long)]
    pub tpmstate: Option<String>,
    /// type=unixio,path=S[,mode=M] or type=tcp,port=P[,bindaddr=A]: the control channel.
    #[arg(long)]
    pub ctrl: Option<String>,
    /// type=tcp,port=P[,bindaddr=A] or type=unixio,path=S[,mode=M]: the data channel (QEMU
    /// passes its own over the control channel instead).
    #[arg(long)]
    pub server: Option<String>,
    /// not-need-init (the TPM runs without CMD_INIT), startup-clear (and is started),
    /// disable-auto-shutdown (no TPM2_Shutdown(STATE) sent for the client on stop or exit).
    #[arg(long)]
    pub flags: Option<String>,
    /// file=F: write the process id there once the channels are bound.
    #[arg(long)]
    pub pid: Option<String>,
    /// file=F[,level=N]: append log lines there instead of stderr.
    #[arg(long)]
    pub log: Option<String>,
    /// file=K[,format=binary|hex]: the key that seals the state folder (32 bytes, mode 0600).
    #[arg(long)]
    pub key: Option<String>,
    /// file=K[,format=binary|hex]: the key that seals the state blobs (default: --key).
    #[arg(long)]
    pub migration_key: Option<String>,
    /// End when the data channel's client closes it (a connection to --server or the socket
    /// passed with CMD_SET_DATAFD), as swtpm's -t/--terminate; `--ctrl ...,terminate` ends
    /// when the control connection is lost.
    #[arg(short = 't', long)]
    pub terminate: bool,
    /// Create the EKs and their certificates first (needs --tpmstate and --key).
    #[arg(long)]
    pub manufacture: bool,
    /// Run in the background once the channels are bound.
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
}

/// Where a channel listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix { path: PathBuf, mode: Option<u32> },
}

/// The parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Socket {
    pub state_dir: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub migration_key: Option<PathBuf>,
    pub ctrl: Option<Endpoint>,
    pub server: Option<Endpoint>,
    pub not_need_init: bool,
    pub startup_clear: bool,
    /// No TPM2_Shutdown(STATE) before CMD_INIT/CMD_STOP/CMD_SHUTDOWN or at exit.
    pub disable_auto_shutdown: bool,
    pub pid_file: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    /// `--terminate`: end when a data channel closes.
    pub terminate: bool,
    /// `--ctrl ...,terminate`: end when a control connection closes.
    pub ctrl_terminate: bool,
    pub manufacture: bool,
    pub daemon: bool,
}

/// A command line that cannot be served, named for the user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    #[error("vtpm-sim implements TPM 2.0 only: pass --tpm2")]
    NotTpm2,
    #[error("--{opt}: unknown key `{key}` (accepted: {accepted})")]
    UnknownKey {
        opt: &'static str,
        key: String,
        accepted: &'static str,
    },
    #[error("--{opt}: bad value `{value}` for {key}")]
    Value {
        opt: &'static str,
        key: &'static str,
        value: String,
    },
    #[error("--{opt}: missing {key}=")]
    Missing {
        opt: &'static str,
        key: &'static str,
    },
    #[error("--{opt}: type={ty} is not served (type=tcp or type=unixio)")]
    Type { opt: &'static str, ty: String },
    #[error(
        "--flags: unknown flag `{0}` (accepted: not-need-init, startup-clear, disable-auto-shutdown)"
    )]
    Flag(String),
    #[error(
        "--tpmstate dir={0}: the state folder is sealed; give its key with --key file=K (32 bytes, raw or 64 hex digits, mode 0600; `head -c 32 /dev/urandom > K; chmod 600 K`)"
    )]
    NeedKey(PathBuf),
    #[error("--{0} needs --tpmstate dir=D")]
    NeedState(&'static str),
    #[error("give --ctrl or --server: no channel to serve")]
    NoChannel,
}

/// `k=v,k=v,flag` as swtpm writes its option values; only keys in `accepted` are taken.
fn pairs(
    opt: &'static str,
    s: &str,
    accepted: &'static str,
) -> Result<Vec<(String, String)>, OptionError> {
    let keys: Vec<&str> = accepted.split(", ").collect();
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            if !keys.contains(&k) {
                return Err(OptionError::UnknownKey {
                    opt,
                    key: k.to_string(),
                    accepted,
                });
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

fn get<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn required(
    opt: &'static str,
    kv: &[(String, String)],
    key: &'static str,
) -> Result<PathBuf, OptionError> {
    match get(kv, key) {
        Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
        _ => Err(OptionError::Missing { opt, key }),
    }
}

fn mode(opt: &'static str, kv: &[(String, String)]) -> Result<Option<u32>, OptionError> {
    get(kv, "mode")
        .map(|m| {
            u32::from_str_radix(m, 8).map_err(|_| OptionError::Value {
                opt,
                key: "mode",
                value: m.to_string(),
            })
        })
        .transpose()
}

/// A channel's endpoint, and for `--ctrl` whether its `terminate` flag is set (swtpm's
/// "end when the control connection is lost", which QEMU's persistent connection wants).
fn endpoint(opt: &'static str, s: &str) -> Result<(Endpoint, bool), OptionError> {
    let accepted = if opt == "ctrl" {
        "type, port, bindaddr, path, mode, terminate"
    } else {
        "type, port, bindaddr, path, mode"
    };
    let kv = pairs(opt, s, accepted)?;
    let terminate = get(&kv, "terminate").is_some();
    let e = match get(&kv, "type").unwrap_or("tcp") {
        "tcp" => {
            let port = get(&kv, "port").ok_or(OptionError::Missing { opt, key: "port" })?;
            let port = port.parse::<u16>().map_err(|_| OptionError::Value {
                opt,
                key: "port",
                value: port.to_string(),
            })?;
            let ip = match get(&kv, "bindaddr") {
                None => Ipv4Addr::LOCALHOST.into(),
                Some(a) => a.parse().map_err(|_| OptionError::Value {
                    opt,
                    key: "bindaddr",
                    value: a.to_string(),
                })?,
            };
            Ok(Endpoint::Tcp(SocketAddr::new(ip, port)))
        }
        "unixio" => Ok(Endpoint::Unix {
            path: required(opt, &kv, "path")?,
            mode: mode(opt, &kv)?,
        }),
        other => Err(OptionError::Type {
            opt,
            ty: other.to_string(),
        }),
    };
    e.map(|e| (e, terminate))
}

fn key_file(opt: &'static str, s: &str) -> Result<PathBuf, OptionError> {
    let kv = pairs(opt, s, "file, format")?;
    if let Some(f) = get(&kv, "format") {
        // StateKey::load reads both forms; the value is only checked.
        if f != "binary" && f != "hex" {
            return Err(OptionError::Value {
                opt,
                key: "format",
                value: f.to_string(),
            });
        }
    }
    required(opt, &kv, "file")
}

impl SocketArgs {
    /// Checks the options and turns them into a `Socket`.
    pub fn parse(&self) -> Result<Socket, OptionError> {
        if !self.tpm2 {
            return Err(OptionError::NotTpm2);
        }
        let mut out = Socket {
            terminate: self.terminate,
            manufacture: self.manufacture,
            daemon: self.daemon,
            ..Socket::default()
        };
        if let Some(s) = &self.tpmstate {
            let kv = pairs("tpmstate", s, "dir, mode")?;
            mode("tpmstate", &kv)?;
            out.state_dir = Some(required("tpmstate", &kv, "dir")?);
        }
        out.key = self
            .key
            .as_deref()
            .map(|k| key_file("key", k))
            .transpose()?;
        out.migration_key = self
            .migration_key
            .as_deref()
            .map(|k| key_file("migration-key", k))
            .transpose()?;
        match (&out.state_dir, &out.key) {
            (Some(d), None) => return Err(OptionError::NeedKey(d.clone())),
            (None, Some(_)) => return Err(OptionError::NeedState("key")),
            _ => {}
        }
        if out.manufacture && out.state_dir.is_none() {
            return Err(OptionError::NeedState("manufacture"));
        }
        if let Some(c) = self.ctrl.as_deref() {
            let (e, terminate) = endpoint("ctrl", c)?;
            out.ctrl = Some(e);
            out.ctrl_terminate = terminate;
        }
        out.server = self
            .server
            .as_deref()
            .map(|c| endpoint("server", c).map(|(e, _)| e))
            .transpose()?;
        if out.ctrl.is_none() && out.server.is_none() {
            return Err(OptionError::NoChannel);
        }
        for f in self.flags.as_deref().unwrap_or("").split(',') {
            match f {
                "" => {}
                "not-need-init" => out.not_need_init = true,
                "startup-clear" => out.startup_clear = true,
                "disable-auto-shutdown" => out.disable_auto_shutdown = true,
                other => return Err(OptionError::Flag(other.to_string())),
            }
        }
        if let Some(p) = &self.pid {
            out.pid_file = Some(required("pid", &pairs("pid", p, "file")?, "file")?);
        }
        if let Some(l) = &self.log {
            out.log_file = Some(required("log", &pairs("log", l, "file, level")?, "file")?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> SocketArgs {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            a: SocketArgs,
        }
        <P as clap::Parser>::try_parse_from([&["vtpm-sim"], line].concat())
            .expect("clap accepts the line")
            .a
    }

    #[test]
    fn the_documented_qemu_line_parses() {
        let s = args(&[
            "--tpm2",
            "--tpmstate",
            "dir=/tmp/st,mode=0600",
            "--key",
            "file=/tmp/k,format=binary",
            "--ctrl",
            "type=unixio,path=/tmp/s,mode=0600",
            "--server",
            "type=tcp,port=2321",
            "--flags",
            "not-need-init,startup-clear",
            "--pid",
            "file=/tmp/p",
            "--log",
            "file=/tmp/l,level=20",
            "-d",
            "--terminate",
        ])
        .parse()
        .unwrap();
        assert!(s.terminate && !s.ctrl_terminate);
        // libvirt's and QEMU's: a Unix data channel, the control channel's own terminate.
        let u = args(&[
            "--tpm2",
            "--ctrl",
            "type=unixio,path=/tmp/c,terminate",
            "--server",
            "type=unixio,path=/tmp/d",
            "--flags",
            "not-need-init,disable-auto-shutdown",
        ])
        .parse()
        .unwrap();
        assert!(u.ctrl_terminate && !u.terminate && u.disable_auto_shutdown);
        assert_eq!(
            u.server,
            Some(Endpoint::Unix {
                path: "/tmp/d".into(),
                mode: None
            })
        );
        assert_eq!(s.state_dir, Some("/tmp/st".into()));
        assert_eq!(
            s.ctrl,
            Some(Endpoint::Unix {
                path: "/tmp/s".into(),
                mode: Some(0o600)
            })
        );
        assert_eq!(
            s.server,
            Some(Endpoint::Tcp("127.0.0.1:2321".parse().unwrap()))
        );
        assert!(s.not_need_init && s.startup_clear && s.daemon);
        assert_eq!(s.pid_file, Some("/tmp/p".into()));
        assert_eq!(s.log_file, Some("/tmp/l".into()));
    }

    #[test]
    fn bad_lines_are_named() {
        let d = |s: &str| PathBuf::from(s);
        let cases: &[(&[&str], OptionError)] = &[
            (&["--ctrl", "type=tcp,port=1"], OptionError::NotTpm2),
            (
                &[
                    "--tpm2",
                    "--tpmstate",
                    "dir=/s",
                    "--ctrl",
                    "type=tcp,port=1",
                ],
                OptionError::NeedKey(d("/s")),
            ),
            (&["--tpm2"], OptionError::NoChannel),
            (
                &["--tpm2", "--ctrl", "type=chardev,path=/x"],
                OptionError::Type {
                    opt: "ctrl",
                    ty: "chardev".into(),
                },
            ),
            (
                &["--tpm2", "--server", "type=tcp,port=99999"],
                OptionError::Value {
                    opt: "server",
                    key: "port",
                    value: "99999".into(),
                },
            ),
            (
                &["--tpm2", "--ctrl", "type=unixio"],
                OptionError::Missing {
                    opt: "ctrl",
                    key: "path",
                },
            ),
            (
                &[
                    "--tpm2",
                    "--ctrl",
                    "type=tcp,port=1",
                    "--flags",
                    "startup-deactivated",
                ],
                OptionError::Flag("startup-deactivated".into()),
            ),
            (
                &["--tpm2", "--ctrl", "type=tcp,port=1,colour=red"],
                OptionError::UnknownKey {
                    opt: "ctrl",
                    key: "colour".into(),
                    accepted: "type, port, bindaddr, path, mode, terminate",
                },
            ),
            (
                // `terminate` belongs to the control channel (the data channel's is -t).
                &["--tpm2", "--server", "type=unixio,path=/d,terminate"],
                OptionError::UnknownKey {
                    opt: "server",
                    key: "terminate".into(),
                    accepted: "type, port, bindaddr, path, mode",
                },
            ),
            (
                &["--tpm2", "--ctrl", "type=tcp,port=1", "--manufacture"],
                OptionError::NeedState("manufacture"),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(args(line).parse().as_ref(), Err(want), "{line:?}");
        }
    }
}
