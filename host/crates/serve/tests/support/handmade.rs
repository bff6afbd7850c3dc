//! Predictors made by hand: a core module in WAT whose `infer` answers one fixed reply, laid out
//! in its memory as the canonical ABI has it, made a `weft:serve/predictor` component with
//! wit-component against the real WIT. They answer what no well-behaved model would: huge
//! names, parameters and error strings, shapes whose element count overflows.

use std::path::{Path, PathBuf};

/// Bytes in the model's memory: written out, or `len` copies of one byte (filled by `infer`
/// itself, so a reply of megabytes costs no megabytes of WAT).
#[derive(Clone)]
pub enum Blob {
    Text(String),
    /// `head`, `len` copies of `byte`, `tail`.
    Big {
        head: String,
        byte: u8,
        len: u32,
        tail: String,
    },
}

pub fn text(s: &str) -> Blob {
    Blob::Text(s.into())
}

/// `len` copies of `byte`.
pub fn fill(byte: u8, len: u32) -> Blob {
    big("", byte, len, "")
}

pub fn big(head: &str, byte: u8, len: u32, tail: &str) -> Blob {
    Blob::Big {
        head: head.into(),
        byte,
        len,
        tail: tail.into(),
    }
}

pub enum Shape {
    Dims(Vec<i64>),
    /// That many dimensions of size 0 (a valid, empty tensor with a huge shape).
    Zeros(u32),
}

pub struct Output {
    pub name: Blob,
    /// The WIT `datatype` enum's index (FP32 is 11).
    pub datatype: u8,
    pub shape: Shape,
    pub data: Blob,
}

pub enum Reply {
    Ok {
        outputs: Vec<Output>,
        parameters: Blob,
    },
    InvalidInput(Blob),
    Failed(Blob),
}

/// Where the laid-out reply starts; below it, zeroes (an `ok` load, empty metadata).
const BASE: u32 = 1024;
/// Where filled blobs start.
const FILLS: u32 = 1 << 20;

/// The reply's memory image (from `BASE`) and the fills `infer` makes.
#[derive(Default)]
struct Layout {
    image: Vec<u8>,
    /// Data segments beyond the image (a big blob's head and tail).
    segments: Vec<(u32, String)>,
    fills: Vec<(u32, u8, u32)>,
    fill_end: u32,
}

impl Layout {
    fn put(&mut self, bytes: &[u8], align: usize) -> u32 {
        while !self.image.len().is_multiple_of(align) {
            self.image.push(0);
        }
        let at = BASE + self.image.len() as u32;
        self.image.extend_from_slice(bytes);
        at
    }

    /// A blob's (pointer, length).
    fn blob(&mut self, b: &Blob) -> (u32, u32) {
        match b {
            Blob::Text(s) => (self.put(s.as_bytes(), 1), s.len() as u32),
            Blob::Big {
                head,
                byte,
                len,
                tail,
            } => {
                let at = FILLS + self.fill_end;
                let head_len = head.len() as u32;
                self.segments.push((at, head.clone()));
                self.fills.push((at + head_len, *byte, *len));
                self.segments.push((at + head_len + len, tail.clone()));
                let total = head_len + len + tail.len() as u32;
                self.fill_end += total.next_multiple_of(8);
                (at, total)
            }
        }
    }

    /// A string or list field: pointer then length.
    fn slice(out: &mut Vec<u8>, (ptr, len): (u32, u32)) {
        out.extend_from_slice(&ptr.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }

    /// A `tensor` record (28 bytes, align 4).
    fn tensor(&mut self, o: &Output) -> Vec<u8> {
        let name = self.blob(&o.name);
        let shape = match &o.shape {
            Shape::Dims(dims) => {
                let bytes: Vec<u8> = dims.iter().flat_map(|d| d.to_le_bytes()).collect();
                (self.put(&bytes, 8), dims.len() as u32)
            }
            Shape::Zeros(n) => (self.blob(&fill(0, n * 8)).0, *n),
        };
        let data = self.blob(&o.data);
        let mut rec = Vec::new();
        Self::slice(&mut rec, name);
        rec.extend_from_slice(&[o.datatype, 0, 0, 0]);
        Self::slice(&mut rec, shape);
        Self::slice(&mut rec, data);
        rec
    }

    /// `result<infer-response, infer-error>` (20 bytes, align 4); returns its address.
    fn reply(&mut self, reply: &Reply) -> u32 {
        let mut rec = Vec::new();
        match reply {
            Reply::Ok {
                outputs,
                parameters,
            } => {
                let records: Vec<u8> = outputs.iter().flat_map(|o| self.tensor(o)).collect();
                let list = (self.put(&records, 4), outputs.len() as u32);
                let parameters = self.blob(parameters);
                rec.extend_from_slice(&[0, 0, 0, 0]);
                Self::slice(&mut rec, list);
                Self::slice(&mut rec, parameters);
            }
            Reply::InvalidInput(m) | Reply::Failed(m) => {
                let case = u8::from(matches!(reply, Reply::Failed(_)));
                let m = self.blob(m);
                rec.extend_from_slice(&[1, 0, 0, 0, case, 0, 0, 0]);
                Self::slice(&mut rec, m);
                rec.extend_from_slice(&[0; 4]);
            }
        }
        self.put(&rec, 4)
    }
}

/// The core module: memory, a bump allocator, and the model's three functions.
fn wat(reply: &Reply) -> String {
    let mut layout = Layout::default();
    let at = layout.reply(reply);
    assert!(
        BASE as usize + layout.image.len() < FILLS as usize,
        "reply too large to lay out"
    );
    let heap = (FILLS + layout.fill_end).next_multiple_of(8);
    let pages = heap / 65536 + 64;
    let escape = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("\\{b:02x}")).collect() };
    let image = escape(&layout.image);
    let segments: String = layout
        .segments
        .iter()
        .map(|(at, s)| format!("(data (i32.const {at}) \"{}\")\n", escape(s.as_bytes())))
        .collect();
    let fills: String = layout
        .fills
        .iter()
        .map(|(at, byte, len)| {
            format!("(memory.fill (i32.const {at}) (i32.const {byte}) (i32.const {len}))\n")
        })
        .collect();
    format!(
        r#"(module
  (memory (export "memory") {pages})
  (global $heap (mut i32) (i32.const {heap}))
  (data (i32.const {BASE}) "{image}")
  {segments}
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.xor (i32.sub (local.get 2) (i32.const 1)) (i32.const -1))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.lt_s (memory.grow (i32.add (i32.shr_u (global.get $heap) (i32.const 16)) (i32.const 1))) (i32.const 0))
        (then unreachable))))
    (local.get $p))
  (func (export "weft:serve/model@0.1.0#load") (param i32 i32 i32) (result i32)
    (i32.const 0))
  (func (export "weft:serve/model@0.1.0#metadata") (result i32)
    (i32.const 0))
  (func (export "weft:serve/model@0.1.0#infer") (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
    {fills}
    (i32.const {at})))"#
    )
}

/// A predictor component answering `reply` to every request, written into `dir`.
pub fn predictor(dir: &Path, name: &str, reply: &Reply) -> PathBuf {
    let component = weft_test_programs::component_from_wat(&wat(reply), "serve", "predictor");
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, component).unwrap();
    path
}
