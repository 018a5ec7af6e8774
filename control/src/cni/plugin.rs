//! One invocation: environment and stdin in, stdout and exit code out.

use std::io::{self, IsTerminal, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use super::client::{Transport, TransportError, UnixTransport};
use super::config::{self, peek_version, version_for_version_command, Version};
use super::env::{self, parse_cni_args, Command, Env, PodArgs};
use super::result::{add_result, error_result, parse_prev_result, version_result};
use crate::cniwire::{code, CniError, CniReply, CniRequest};

/// The code for a bug in the plugin itself (libcni's `ErrInternal`).
pub const INTERNAL_ERROR: u32 = 999;
/// The largest network configuration read from stdin.
pub const MAX_STDIN: u64 = 4 << 20;
/// The message of every "try again" error caused by the daemon being unreachable.
pub const DAEMON_DOWN_MSG: &str = "podlane-control is not running or busy; try again later";

/// What the process prints on stdout and exits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The whole of stdout: a result, a version result, an error result, or nothing.
    pub stdout: String,
    /// 0 on success, 1 on error.
    pub exit_code: i32,
}

/// Runs one invocation against the daemon named by the config (over its unix socket).
pub fn run(env: &Env, stdin: &[u8]) -> Outcome {
    run_with(env, stdin, &UnixTransport)
}

/// Runs one invocation with `transport` standing for the daemon.
pub fn run_with(env: &Env, stdin: &[u8], transport: &dyn Transport) -> Outcome {
    match execute(env, stdin, transport) {
        Ok(stdout) => Outcome {
            stdout,
            exit_code: 0,
        },
        Err(e) => Outcome {
            stdout: error_result(peek_version(stdin).unwrap_or(Version::LATEST).as_str(), &e)
                .to_string(),
            exit_code: 1,
        },
    }
}

/// The binary's whole job: reads the process environment and stdin, runs, prints, and
/// returns the exit code. A panic (a bug) still prints an error result (code 999).
pub fn run_process() -> i32 {
    install_panic_hook();
    let env = Env::from_process();
    let stdin = if io::stdin().is_terminal() {
        Ok(Vec::new())
    } else {
        read_input(&mut io::stdin().lock())
    };
    let outcome = match stdin {
        Ok(bytes) => run(&env, &bytes),
        // VERSION does not need stdin (the reference skel does not read it).
        Err(_) if matches!(env::command(&env), Ok(Command::Version)) => run(&env, b""),
        Err(e) => Outcome {
            stdout: error_result(Version::LATEST.as_str(), &e).to_string(),
            exit_code: 1,
        },
    };
    if PANICKED.load(Ordering::SeqCst) {
        // The panic hook has printed the one error result stdout may hold.
        return 1;
    }
    let mut out = io::stdout().lock();
    // Nothing useful is left to do if stdout is gone.
    let _ = out.write_all(outcome.stdout.as_bytes());
    let _ = out.flush();
    outcome.exit_code
}

/// Reads the network configuration (at most [`MAX_STDIN`] bytes; code 5 otherwise).
pub fn read_input<R: Read>(r: &mut R) -> Result<Vec<u8>, CniError> {
    let mut buf = Vec::new();
    r.take(MAX_STDIN + 1).read_to_end(&mut buf).map_err(|e| {
        CniError::new(
            code::IO_FAILURE,
            "failed to read the network configuration from stdin",
        )
        .details(e.to_string())
    })?;
    if buf.len() as u64 > MAX_STDIN {
        return Err(CniError::new(
            code::IO_FAILURE,
            "failed to read the network configuration from stdin",
        )
        .details(format!("larger than {MAX_STDIN} bytes")));
    }
    Ok(buf)
}

/// Set once the panic hook has printed an error result.
static PANICKED: AtomicBool = AtomicBool::new(false);

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("podlane-cni: {info}");
        if PANICKED.swap(true, Ordering::SeqCst) {
            return;
        }
        let e = CniError::new(INTERNAL_ERROR, "internal error in the podlane CNI plugin")
            .details(info.to_string());
        let _ = io::stdout().write_all(
            error_result(Version::LATEST.as_str(), &e)
                .to_string()
                .as_bytes(),
        );
        let _ = io::stdout().flush();
    }));
}

fn execute(env: &Env, stdin: &[u8], transport: &dyn Transport) -> Result<String, CniError> {
    let command = env::command(env)?;
    let Some(wire) = command.wire() else {
        return Ok(version_result(&version_for_version_command(stdin)).to_string());
    };
    let inv = env::invocation(env, command)?;
    let conf = config::parse(stdin, command)?;
    let pod = match inv.args.as_deref() {
        Some(args) if command.is_attachment() => parse_cni_args(args)?,
        _ => PodArgs::default(),
    };
    let netns = inv.netns.as_deref().unwrap_or_default();

    let mut request = CniRequest {
        command: wire,
        network: conf.name.clone(),
        container_id: inv.container_id.clone(),
        ifname: inv.ifname.clone(),
        netns: inv.netns.clone(),
        pod_namespace: pod.namespace,
        pod_name: pod.name,
        expect: None,
        valid_attachments: Vec::new(),
    };
    let mut prev = None;
    match command {
        Command::Add => {
            if let Some(p) = &conf.prev_result {
                let p = parse_prev_result(p)?;
                if p.find_interface(&inv.ifname, netns).is_some() {
                    return Err(CniError::new(
                        code::INVALID_CONFIG,
                        format!("interface {:?} already exists in the container", inv.ifname),
                    )
                    .details(format!(
                        "prevResult lists {:?} in sandbox {netns:?}: an earlier plugin in the \
                         chain created it",
                        inv.ifname
                    )));
                }
                prev = Some(p);
            }
        }
        Command::Check => {
            let p = conf.prev_result.as_ref().ok_or_else(|| {
                CniError::new(code::INVALID_CONFIG, "CHECK requires prevResult")
                    .details("the runtime must pass the result of this attachment's ADD")
            })?;
            request.expect = Some(parse_prev_result(p)?.expected_attachment(&inv.ifname, netns)?);
        }
        Command::Gc => {
            request.valid_attachments = conf.valid_attachments.clone().ok_or_else(|| {
                CniError::new(
                    code::INVALID_CONFIG,
                    format!("GC requires {}", config::VALID_ATTACHMENTS),
                )
                .details("without the list of attachments to keep, nothing is collected")
            })?;
        }
        Command::Del | Command::Status | Command::Version => {}
    }

    let reply = transport
        .exchange(&conf.socket, conf.timeout, &request)
        .map_err(|e| transport_error(command, &e))?;
    match reply {
        CniReply::Error(e) => Err(e),
        CniReply::Added(att) if command == Command::Add => {
            if att.prefix_len > 32 || att.ifname != inv.ifname {
                return Err(bad_reply(format!(
                    "ADD answered an attachment for {:?} with prefix length {}",
                    att.ifname, att.prefix_len
                )));
            }
            Ok(add_result(
                conf.cni_version,
                prev,
                &inv.ifname,
                netns,
                &att,
                conf.dns.as_ref(),
            )
            .to_string())
        }
        CniReply::Done if command != Command::Add => Ok(String::new()),
        other => Err(bad_reply(format!(
            "{} answered {}",
            command.as_str(),
            match other {
                CniReply::Added(_) => "an attachment",
                CniReply::Done => "done without an attachment",
                CniReply::Error(_) => "an error",
            }
        ))),
    }
}

fn bad_reply(details: String) -> CniError {
    CniError::new(
        code::IO_FAILURE,
        "podlane-control answered an invalid reply",
    )
    .details(details)
}

/// The error for a failed daemon exchange: STATUS reports the plugin unavailable (50); the
/// other commands report "try again" (11) when the daemon is down or busy, and an I/O failure
/// (5) otherwise. DEL and CHECK are errors too: the runtime retries them.
fn transport_error(command: Command, e: &TransportError) -> CniError {
    match (command, e) {
        (Command::Status, _) => {
            CniError::new(code::NOT_AVAILABLE, "podlane-control is not available")
                .details(e.to_string())
        }
        (_, TransportError::Unavailable(_) | TransportError::Timeout(_)) => {
            CniError::new(code::TRY_AGAIN, DAEMON_DOWN_MSG).details(e.to_string())
        }
        (_, TransportError::Io(_) | TransportError::BadReply(_)) => {
            CniError::new(code::IO_FAILURE, "failed to talk to podlane-control")
                .details(e.to_string())
        }
    }
}
