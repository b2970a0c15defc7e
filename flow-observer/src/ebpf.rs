//! Loading and attaching the kernel programs (aya).
//!
//! [`Programs`] owns the loaded object: dropping it detaches both programs and frees the maps,
//! so the agent leaves nothing behind when it exits (SIGTERM, SIGINT, or an error).

use std::os::fd::{AsFd as _, AsRawFd as _};

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use aya::maps::{HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType};
use aya::{Ebpf, EbpfLoader};
use netpol_ebpf_common::{Counter, FlowKey, FlowStats};

/// The kernel programs, built and placed in `OUT_DIR` by the build script (`build.rs`).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netpol-ebpf"));

/// Where cgroup v2 is mounted: the unified hierarchy of a hybrid setup, or `/sys/fs/cgroup`.
pub fn find_cgroup_root() -> Result<PathBuf> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("cannot read /proc/self/mounts")?;
    let mut found: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, path, kind) = (f.next()?, f.next()?, f.next()?);
            (kind == "cgroup2").then(|| PathBuf::from(path))
        })
        .collect();
    found.sort_by_key(|p| p.as_os_str().len());
    found
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no cgroup v2 hierarchy is mounted; pass `--cgroup PATH`"))
}

/// The loaded and attached programs.
pub struct Programs {
    ebpf: Ebpf,
    pub cgroup: PathBuf,
}

impl std::fmt::Debug for Programs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Programs")
            .field("cgroup", &self.cgroup)
            .finish_non_exhaustive()
    }
}

impl Programs {
    /// Load the programs (the `FLOWS` map sized to `max_flows`, each ring buffer `ring_bytes`
    /// long) and attach them to the ingress
    /// and egress of `cgroup`. Through a bpf_link (kernel 5.7+), which coexists with any other
    /// program there (Cilium's own, say) whatever the mode; link_create wants mode flags 0.
    pub fn attach(cgroup: &Path, max_flows: u32, ring_bytes: u32) -> Result<Self> {
        if !ring_bytes.is_power_of_two() || ring_bytes < 4096 {
            bail!(
                "the ring buffer size must be a power of two of at least 4096 bytes, not {ring_bytes}"
            );
        }
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("FLOWS", max_flows)
            .map_max_entries("FLOW_EVENTS", ring_bytes)
            // DNS answers come at a fraction of the rate of new flows.
            .map_max_entries("DNS_EVENTS", ring_bytes.min(1 << 20))
            .load(OBJECT)
            .context("cannot load the eBPF programs (root, or CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN, is needed)")?;
        let dir = std::fs::File::open(cgroup)
            .with_context(|| format!("cannot open the cgroup `{}`", cgroup.display()))?;
        for (name, kind) in [
            ("netpol_ingress", CgroupSkbAttachType::Ingress),
            ("netpol_egress", CgroupSkbAttachType::Egress),
        ] {
            let program: &mut CgroupSkb = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("the eBPF object has no program `{name}`"))?
                .try_into()?;
            program
                .load()
                .with_context(|| format!("the kernel rejected `{name}`"))?;
            program
                .attach(&dir, kind, CgroupAttachMode::Single)
                .with_context(|| format!("cannot attach `{name}` to `{}`", cgroup.display()))?;
        }
        Ok(Self {
            ebpf,
            cgroup: cgroup.to_path_buf(),
        })
    }

    /// A ring buffer, taken out of the object (once).
    pub fn ring(&mut self, name: &str) -> Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(name)
            .ok_or_else(|| anyhow!("no map `{name}`"))?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Every flow the kernel counts now, one at a time (no copy of the whole map).
    pub fn for_each_flow(&self, mut f: impl FnMut(&FlowKey, &FlowStats)) -> Result<()> {
        let map = self
            .ebpf
            .map("FLOWS")
            .ok_or_else(|| anyhow!("no map `FLOWS`"))?;
        let flows: HashMap<&MapData, FlowKey, FlowStats> = HashMap::try_from(map)?;
        for item in flows.iter() {
            match item {
                Ok((k, v)) => f(&k, &v),
                // An LRU entry evicted while iterating: skip it.
                Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => bail!("cannot read `FLOWS`: {e}"),
            }
        }
        Ok(())
    }

    /// Take keys out of the flow map (those of connections the observer let go), each with
    /// its last totals, read and deleted in one step (`BPF_MAP_LOOKUP_AND_DELETE_ELEM`, Linux
    /// 5.14; before, a read then a delete): a packet counted between the agent's read and the
    /// delete is not lost. A key the kernel already evicted is skipped.
    pub fn take_flows(&mut self, keys: &[FlowKey]) -> Result<Vec<(FlowKey, FlowStats)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let map = self
            .ebpf
            .map_mut("FLOWS")
            .ok_or_else(|| anyhow!("no map `FLOWS`"))?;
        let fd = match &*map {
            aya::maps::Map::LruHashMap(data) => data.fd().as_fd().as_raw_fd(),
            _ => bail!("`FLOWS` is not an LRU hash map"),
        };
        let mut taken = Vec::with_capacity(keys.len());
        let mut atomic = true;
        for key in keys {
            if atomic {
                match lookup_and_delete(fd, key) {
                    Ok(Some(stats)) => {
                        taken.push((*key, stats));
                        continue;
                    }
                    Ok(None) => continue,
                    // An older kernel: read, then delete.
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP)
                        ) =>
                    {
                        atomic = false;
                    }
                    Err(e) => bail!("cannot take from `FLOWS`: {e}"),
                }
            }
            let mut flows: HashMap<&mut MapData, FlowKey, FlowStats> =
                HashMap::try_from(&mut *map)?;
            let stats = match flows.get(key, 0) {
                Ok(stats) => stats,
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => bail!("cannot read `FLOWS`: {e}"),
            };
            match flows.remove(key) {
                Ok(()) => taken.push((*key, stats)),
                Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => bail!("cannot delete from `FLOWS`: {e}"),
            }
        }
        Ok(taken)
    }

    /// The kernel's counters, summed over CPUs (levels: the largest), in [`Counter::ALL`] order.
    pub fn counters(&self) -> Result<Vec<(Counter, u64)>> {
        let map = self
            .ebpf
            .map("COUNTERS")
            .ok_or_else(|| anyhow!("no map `COUNTERS`"))?;
        let counters: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map)?;
        Counter::ALL
            .iter()
            .map(|c| {
                let values = counters.get(&c.index(), 0)?;
                let v = if c.is_level() {
                    values.iter().copied().max().unwrap_or(0)
                } else {
                    values.iter().sum()
                };
                Ok((*c, v))
            })
            .collect()
    }
}

/// The kernel's internal "not supported" (`ENOTSUPP`, 524), which the bpf syscall returns
/// for commands a map type lacks.
const ENOTSUPP: i32 = 524;

/// `bpf(BPF_MAP_LOOKUP_AND_DELETE_ELEM)` on a hash map: the value, and the key gone, in one
/// step; `None` if the key is not there.
#[expect(
    unsafe_code,
    reason = "aya 0.14 has no lookup-and-delete for hash maps: the bpf syscall, by hand"
)]
fn lookup_and_delete(fd: std::os::fd::RawFd, key: &FlowKey) -> std::io::Result<Option<FlowStats>> {
    /// The map-element part of `union bpf_attr`.
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;
    let mut value = FlowStats::default();
    let attr = Attr {
        map_fd: u32::try_from(fd).unwrap_or(u32::MAX),
        _pad: 0,
        key: std::ptr::from_ref(key) as u64,
        value: std::ptr::from_mut(&mut value) as u64,
        flags: 0,
    };
    // SAFETY: `attr` is a valid `bpf_attr` prefix for this command (the kernel reads
    // `size_of::<Attr>()` bytes, zero-extends the rest); `key` points at a `FlowKey` and
    // `value` at a `FlowStats`, the map's key and value types byte for byte (both `repr(C)`
    // with explicit padding), and both outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_AND_DELETE_ELEM,
            std::ptr::from_ref(&attr),
            size_of::<Attr>(),
        )
    };
    if r == 0 {
        return Ok(Some(value));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOENT) {
        Ok(None)
    } else {
        Err(e)
    }
}
