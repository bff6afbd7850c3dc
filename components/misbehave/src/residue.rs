//! Mode `residue`: looks for what an earlier instance left in this instance's memory, then
//! leaves some of its own. A memory slot is reused by the next instance of the same component,
//! so the host must reset it in between; this mode is how a test shows it does.
//!
//! It checks two places a previous instance could have written: a static buffer (the
//! component's own data, restored from its image) and `pages` pages grown with `memory.grow`
//! (zero on a fresh memory). It returns `residue`, how many nonzero bytes it found in both,
//! then fills both with a canary, so a second run in a reused slot would see them if the host
//! left them.

use weft_step::{out_param, ParamValue, StepInput, StepOutput};

const CANARY: u8 = 0xA5;
const STATIC_BYTES: usize = 64 << 10;
static mut BUFFER: [u8; STATIC_BYTES] = [0; STATIC_BYTES];

pub(crate) fn run(input: &StepInput) -> Result<StepOutput, String> {
    let pages = input.int_param_or("pages", 16)?.clamp(1, 1024) as usize;
    let page = 64 << 10;
    // SAFETY: the buffer is only touched here, by the one thread a component has; volatile
    // accesses so the compiler cannot assume it is still all zeros.
    let buffer = unsafe { &mut *core::ptr::addr_of_mut!(BUFFER) };
    let mut residue = count_nonzero(buffer.as_ptr(), buffer.len());
    let grown = grow(pages)?;
    residue += count_nonzero(grown, pages * page);
    fill(buffer.as_mut_ptr(), buffer.len());
    fill(grown, pages * page);
    Ok(StepOutput {
        params: vec![out_param("residue", ParamValue::Int(residue as i64))],
    })
}

#[cfg(target_arch = "wasm32")]
fn grow(pages: usize) -> Result<*mut u8, String> {
    let old = core::arch::wasm32::memory_grow(0, pages);
    if old == usize::MAX {
        return Err(format!("memory.grow of {pages} pages failed"));
    }
    Ok((old * (64 << 10)) as *mut u8)
}

#[cfg(not(target_arch = "wasm32"))]
fn grow(_pages: usize) -> Result<*mut u8, String> {
    Err("residue runs on wasm32 only".into())
}

fn count_nonzero(ptr: *const u8, len: usize) -> usize {
    // SAFETY: `ptr..ptr + len` is the static buffer or pages this instance just grew.
    (0..len)
        .filter(|i| unsafe { core::ptr::read_volatile(ptr.add(*i)) } != 0)
        .count()
}

fn fill(ptr: *mut u8, len: usize) {
    for i in 0..len {
        // SAFETY: as in `count_nonzero`.
        unsafe { core::ptr::write_volatile(ptr.add(i), CANARY) };
    }
}
