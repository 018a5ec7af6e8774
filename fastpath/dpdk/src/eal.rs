//! The DPDK Environment Abstraction Layer: initialisation, device attach/detach, lcores, time.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use dpdk_sys as sys;

use crate::error::{check, from_errno, DpdkError};

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Where the EAL gets its memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Memory {
    /// Hugepages (production). The EAL fails if none are reserved.
    Hugepages,
    /// Hugepages, without a shared runtime directory (`--in-memory`): tests on hosts that have
    /// hugepages.
    InMemory,
    /// Anonymous memory of `mb` MiB (`--no-huge -m mb`): CI and hosts without hugepages. Slower
    /// (no IOVA contiguity), fine for virtual devices. Does not combine with `--in-memory`.
    NoHuge {
        /// MiB of memory.
        mb: u32,
    },
}

/// EAL arguments, built from typed settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalConfig {
    /// argv[0].
    pub program: String,
    /// The lcore list (`-l`), e.g. "0" or "0-1". The first is the main lcore.
    pub lcores: String,
    /// Memory mode.
    pub memory: Memory,
    /// A private runtime prefix (`--file-prefix`) so several DPDK processes can run at once.
    pub file_prefix: String,
    /// Virtual devices to create at start (`--vdev`), e.g. `net_null0`.
    pub vdevs: Vec<String>,
    /// Skip the PCI bus scan (`--no-pci`): virtual devices only.
    pub no_pci: bool,
    /// `--log-level` value, e.g. "lib.eal:error" or "notice".
    pub log_level: Option<String>,
    /// Anything else, passed as is.
    pub extra: Vec<String>,
}

impl EalConfig {
    /// A configuration for tests and CI: no hugepages, no PCI, no shared config, no telemetry,
    /// quiet logs, one lcore.
    pub fn for_tests(file_prefix: &str, vdevs: &[&str]) -> EalConfig {
        EalConfig {
            program: "podlane-test".into(),
            lcores: "0".into(),
            memory: Memory::NoHuge { mb: 512 },
            file_prefix: file_prefix.into(),
            vdevs: vdevs.iter().map(|s| s.to_string()).collect(),
            no_pci: true,
            log_level: Some("lib.eal:error".into()),
            extra: vec!["--no-shconf".into(), "--no-telemetry".into()],
        }
    }

    /// The argument vector.
    pub fn args(&self) -> Vec<String> {
        // `-l` takes CPU ids; `--lcores` maps lcores to CPUs ("0@0,1@1,2@1").
        let flag = if self.lcores.contains('@') {
            "--lcores"
        } else {
            "-l"
        };
        let mut a = vec![self.program.clone(), flag.into(), self.lcores.clone()];
        match self.memory {
            Memory::Hugepages => {}
            Memory::InMemory => a.push("--in-memory".into()),
            Memory::NoHuge { mb } => {
                a.push("--no-huge".into());
                a.push("-m".into());
                a.push(mb.to_string());
            }
        }
        a.push("--file-prefix".into());
        a.push(self.file_prefix.clone());
        for v in &self.vdevs {
            a.push("--vdev".into());
            a.push(v.clone());
        }
        if self.no_pci {
            a.push("--no-pci".into());
        }
        if let Some(l) = &self.log_level {
            a.push("--log-level".into());
            a.push(l.clone());
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

/// The initialised EAL. One per process; it cannot be initialised again after [`Eal::cleanup`].
#[derive(Debug)]
pub struct Eal {
    file_prefix: String,
}

impl Eal {
    /// Initialises the EAL. The argument strings are leaked on purpose: the EAL keeps pointers
    /// into argv after `rte_eal_init` returns.
    pub fn init(cfg: &EalConfig) -> Result<Eal, DpdkError> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::AlreadyInitialised);
        }
        let args = cfg.args();
        let mut ptrs: Vec<*mut c_char> = Vec::with_capacity(args.len());
        for a in &args {
            let c = CString::new(a.as_str()).map_err(|_| {
                DpdkError::Invalid(format!("EAL argument {a:?} contains a NUL byte"))
            })?;
            ptrs.push(c.into_raw());
        }
        let argv: &'static mut [*mut c_char] = Box::leak(ptrs.into_boxed_slice());
        let argc = c_int::try_from(argv.len())
            .map_err(|_| DpdkError::Invalid("too many EAL arguments".into()))?;
        // SAFETY: argv holds argc pointers to NUL-terminated strings that are leaked, so they
        // outlive the EAL; the INITIALISED flag makes this the only call in the process.
        let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            let mut e = from_errno(format!("rte_eal_init({})", args.join(" ")));
            if !matches!(cfg.memory, Memory::NoHuge { .. }) {
                if let DpdkError::Call { text, .. } = &mut e {
                    text.push_str(
                        " — if no hugepages are reserved, reserve some \
                         (echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages) \
                         or run with no_huge = true",
                    );
                }
            }
            return Err(e);
        }
        Ok(Eal {
            file_prefix: cfg.file_prefix.clone(),
        })
    }

    /// Attaches a device by its devargs (a PCI address, or a vdev string such as
    /// `net_tap0,iface=pod1` or `net_pcap0,rx_pcap=in.pcap`) and returns its port id.
    pub fn attach(&self, devargs: &str) -> Result<u16, DpdkError> {
        let name = devargs.split(',').next().unwrap_or(devargs).trim();
        if name.is_empty() {
            return Err(DpdkError::Device {
                devargs: devargs.into(),
                reason: "empty device name".into(),
            });
        }
        let c = CString::new(devargs).map_err(|_| DpdkError::Device {
            devargs: devargs.into(),
            reason: "contains a NUL byte".into(),
        })?;
        // SAFETY: c is a valid NUL-terminated string for the duration of the call.
        let rc = unsafe { sys::rte_dev_probe(c.as_ptr()) };
        if rc < 0 {
            return Err(DpdkError::Device {
                devargs: devargs.into(),
                reason: crate::error::strerror(-rc),
            });
        }
        self.port_by_name(name).ok_or_else(|| DpdkError::Device {
            devargs: devargs.into(),
            reason: "probed, but no Ethernet port of that name appeared".into(),
        })
    }

    /// Detaches a virtual device (the port must be closed first).
    pub fn detach_vdev(&self, name: &str) -> Result<(), DpdkError> {
        let bus = CString::new("vdev").map_err(|_| DpdkError::Invalid("bus".into()))?;
        let dev =
            CString::new(name).map_err(|_| DpdkError::Invalid(format!("device name {name:?}")))?;
        // SAFETY: both strings are valid NUL-terminated strings for the duration of the call.
        let rc = unsafe { sys::rte_eal_hotplug_remove(bus.as_ptr(), dev.as_ptr()) };
        check(rc, format!("detach {name}")).map(|_| ())
    }

    /// The port id of the device called `name`, if there is one.
    pub fn port_by_name(&self, name: &str) -> Option<u16> {
        let c = CString::new(name).ok()?;
        let mut id = 0u16;
        // SAFETY: c is NUL-terminated; id is a valid place for the result.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        (rc == 0).then_some(id)
    }

    /// True if the EAL runs on hugepages.
    pub fn has_hugepages(&self) -> bool {
        // SAFETY: reads EAL state; the EAL is initialised.
        unsafe { sys::rte_eal_has_hugepages() != 0 }
    }

    /// The main lcore.
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: reads EAL state; the EAL is initialised.
        unsafe { sys::rte_get_main_lcore() }
    }

    /// The worker lcores (every enabled lcore but the main one).
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut v = Vec::new();
        // SAFETY: iterating enabled lcores only reads EAL state. -1 starts the iteration; the
        // flags skip the main lcore and do not wrap.
        let mut l = unsafe { sys::rte_get_next_lcore(u32::MAX, 1, 0) };
        while l < sys::RTE_MAX_LCORE {
            v.push(l);
            // SAFETY: as above.
            l = unsafe { sys::rte_get_next_lcore(l, 1, 0) };
        }
        v
    }

    /// Runs `f` on worker lcore `lcore`. Wait for it with [`Eal::wait`].
    pub fn launch<F>(&self, lcore: u32, f: F) -> Result<(), DpdkError>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
            // SAFETY: `arg` is the Box<Box<dyn FnOnce>> leaked by `launch` for exactly this
            // call; ownership comes back here once.
            let f = unsafe { Box::from_raw(arg.cast::<Box<dyn FnOnce() -> i32 + Send>>()) };
            f()
        }
        let boxed: Box<Box<dyn FnOnce() -> i32 + Send>> = Box::new(Box::new(f));
        let arg = Box::into_raw(boxed).cast::<c_void>();
        // SAFETY: trampoline has the lcore_function_t signature and takes ownership of arg.
        let rc = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if rc < 0 {
            // SAFETY: the launch failed, so the trampoline never ran and arg is still ours.
            drop(unsafe { Box::from_raw(arg.cast::<Box<dyn FnOnce() -> i32 + Send>>()) });
            return check(rc, format!("launch on lcore {lcore}")).map(|_| ());
        }
        Ok(())
    }

    /// Waits for the function running on `lcore` and returns its result.
    pub fn wait(&self, lcore: u32) -> i32 {
        // SAFETY: waiting on an lcore only reads/updates EAL state.
        unsafe { sys::rte_eal_wait_lcore(lcore) }
    }

    /// Releases the EAL's resources and removes this process's runtime directory
    /// (`/var/run/dpdk/<file_prefix>`, or under `$XDG_RUNTIME_DIR` when not root), so a run
    /// leaves nothing behind. Every port, pool and mbuf must be gone.
    pub fn cleanup(self) {
        // SAFETY: called once, consuming the handle; the caller dropped every DPDK object.
        unsafe {
            sys::rte_eal_cleanup();
        }
        remove_runtime_dir(&self.file_prefix);
    }
}

/// Removes the DPDK runtime directory of `file_prefix` (ours alone: the prefix is private).
pub fn remove_runtime_dir(file_prefix: &str) {
    if file_prefix.is_empty() || file_prefix.contains('/') || file_prefix.starts_with('.') {
        return;
    }
    let mut dirs = vec![std::path::PathBuf::from("/var/run/dpdk")];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        dirs.push(std::path::PathBuf::from(x).join("dpdk"));
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d.join(file_prefix));
    }
}

/// The TSC frequency.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value the EAL measured at init (0 before init).
    unsafe { sys::rte_get_tsc_hz() }
}

/// The TSC now.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no preconditions.
    unsafe { sys::podlane_rte_rdtsc() }
}
