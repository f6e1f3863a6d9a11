//! A pickle VM emulator: it executes every opcode of protocols 0–5 symbolically (stack, memo,
//! marks) without importing or calling anything, so that every callable a loader would import
//! or call is known exactly, whatever tricks build its name.
//!
//! Memory is bounded: containers keep at most a few items, string and bytes values are kept only
//! within a budget, and stack, memo and opcode counts are capped. Bytes that a loader never
//! interprets (joblib's raw arrays, large BINBYTES) are skipped, not buffered.

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use crate::policy::{self, Class};
use crate::{Blob, Ctx, Section, Verdict};

/// Items kept per container; enough for call arguments and state dicts.
const CONTAINER_ITEMS: usize = 64;
/// Strings up to this size are always kept (names, dtype codes).
const SMALL_STRING: usize = 4096;
/// Longest protocol-0 text line for names and numbers (CPython rejects longer ints anyway).
const LINE_CAP: u64 = SMALL_STRING as u64 * 16;
/// A loaded object this many times larger (in elements) than the pickle is an expansion attack.
const EXPANSION_RATIO: u64 = 1000;
/// ... once it also exceeds this many elements.
const EXPANSION_MIN: u64 = 10_000_000;
/// CPython's default recursion limit (`sys.getrecursionlimit()`): `pickle.dumps` cannot write a
/// value nested deeper, and comparing, printing, copying or saving one raises `RecursionError`,
/// although the (iterative) unpicklers load it.
const RECURSION_LIMIT: u32 = 1000;
/// A dict key or set member nested deeper than this cannot be hashed: CPython's tuple hash
/// recurses on the C stack without a limit and crashes the interpreter (SIGSEGV). Measured with
/// CPython 3.11 on x86-64 Linux: about 130,000 levels with the 8 MiB main-thread stack, so about
/// 16,000 with the 1 MiB stack of Windows' main thread and of many worker threads.
const HASH_DEPTH_LIMIT: u32 = 16_384;
/// Tuples and call results nested deeper than this are kept only as their shape (size and
/// depth), so that the emulator's own values stay shallow (no recursion on hostile depth).
const KEPT_DEPTH: u32 = 32;
/// The legacy PyTorch format starts with a pickle of this number.
const TORCH_LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;

#[derive(Debug, Clone)]
enum V {
    None,
    Bool(bool),
    Int(i128),
    Float,
    Str(Rc<str>),
    /// Bytes, kept when within the retention budget.
    Bytes(Option<Rc<[u8]>>),
    Global(Rc<(String, String)>),
    /// The result of calling `callable` with `args` (REDUCE, NEWOBJ, OBJ, INST), and its
    /// nesting depth.
    Call(Rc<(V, V)>, u32),
    /// A tuple and its nesting depth (1 + that of its deepest item).
    Tuple(Rc<Vec<V>>, u32),
    /// A list, with its shape (shared with the memo and every reference to it).
    List(Rc<RefCell<Vec<V>>>, Rc<Shape>),
    /// A dict: keys and values alternate (kept flat, so DICT and SETITEMS move the stack's
    /// items in without pairing or copying them).
    Dict(Rc<RefCell<Vec<V>>>, Rc<Shape>),
    /// A value known by its shape only (a memoized container read back by GET, a value nested
    /// too deep to keep), and whether it is hashable.
    Shared(Rc<Shape>, bool),
    Set,
    PersistentId,
    /// A value we do not model further (a large string, a buffer).
    Opaque,
}

/// What the emulator knows of a container without its items.
#[derive(Debug, Default)]
struct Shape {
    /// Elements it holds when fully expanded (shared references counted each time).
    weight: Cell<u64>,
    /// How many containers deep it nests (1 for an empty one).
    depth: Cell<u32>,
    /// How many containers it was placed below (0 for a root): containers filled after being
    /// placed (through the memo) get their depth from above.
    level: Cell<u32>,
}

impl Shape {
    fn new(weight: u64, depth: u32) -> Rc<Self> {
        Rc::new(Shape {
            weight: Cell::new(weight),
            depth: Cell::new(depth),
            level: Cell::new(0),
        })
    }

    /// The deepest nesting known through this container, from its root to its deepest item.
    fn reach(&self) -> u32 {
        self.level.get().saturating_add(self.depth.get())
    }
}

impl V {
    fn describe(&self) -> String {
        match self {
            V::Global(g) => format!("{}.{}", g.0, g.1),
            V::Call(c, _) => format!("{}(...)", c.0.describe()),
            V::Str(s) => format!("{:?}", truncate(s, 80)),
            V::Int(i) => i.to_string(),
            V::None => "None".into(),
            V::Bool(b) => b.to_string(),
            V::Float => "float".into(),
            V::Bytes(_) => "bytes".into(),
            V::Tuple(..) => "tuple".into(),
            V::List(..) => "list".into(),
            V::Dict(..) => "dict".into(),
            V::Shared(..) => "container".into(),
            V::Set => "set".into(),
            V::PersistentId => "persistent id".into(),
            V::Opaque => "value".into(),
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            V::Str(s) => Some(s),
            _ => None,
        }
    }

    fn global(&self) -> Option<(&str, &str)> {
        match self {
            V::Global(g) => Some((&g.0, &g.1)),
            _ => None,
        }
    }

    /// Elements of this value when fully expanded (shared references counted each time).
    fn weight(&self) -> u64 {
        fn at(v: &V, depth: usize) -> u64 {
            match v {
                V::List(_, s) | V::Dict(_, s) | V::Shared(s, _) => s.weight.get(),
                V::Tuple(items, _) if depth < 3 => items
                    .iter()
                    .fold(1u64, |acc, i| acc.saturating_add(at(i, depth + 1))),
                V::Call(call, _) if depth < 3 => 1u64.saturating_add(at(&call.1, depth + 1)),
                _ => 1,
            }
        }
        at(self, 0)
    }

    /// How many containers deep this value nests (0 for scalars and names).
    fn depth(&self) -> u32 {
        match self {
            V::Tuple(_, d) | V::Call(_, d) => *d,
            V::List(_, s) | V::Dict(_, s) | V::Shared(s, _) => s.depth.get(),
            _ => 0,
        }
    }

    /// Whether CPython can use this value as a dict key or set item.
    fn hashable(&self) -> bool {
        !matches!(self, V::List(..) | V::Dict(..) | V::Shared(_, false))
    }
}

fn new_list(items: Vec<V>) -> V {
    V::List(Rc::new(RefCell::new(items)), Shape::new(1, 1))
}

fn new_dict(items: Vec<V>) -> V {
    V::Dict(Rc::new(RefCell::new(items)), Shape::new(1, 1))
}

/// A tuple of `items`: one level deeper than its deepest item.
fn new_tuple(items: Vec<V>) -> V {
    let depth = items.iter().map(V::depth).max().unwrap_or(0);
    shallow(V::Tuple(Rc::new(items), depth.saturating_add(1)))
}

/// The result of a call: one level deeper than its callable and arguments.
fn new_call(callable: V, args: V) -> V {
    let depth = callable.depth().max(args.depth()).saturating_add(1);
    shallow(V::Call(Rc::new((callable, args)), depth))
}

/// Keeps the emulator's values shallow: a tuple or call nested deeper than [`KEPT_DEPTH`] is
/// kept as its shape, so no value is ever walked or dropped recursively to a hostile depth.
fn shallow(v: V) -> V {
    match v {
        V::Tuple(_, d) | V::Call(_, d) if d > KEPT_DEPTH => {
            V::Shared(Shape::new(v.weight(), d), true)
        }
        v => v,
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Why a pickle stopped before `STOP`.
#[derive(Debug)]
enum Stop {
    Io(io::Error),
    /// The bytes are not a valid pickle here.
    Invalid(String),
    /// A resource cap was hit.
    Limit(String),
    /// End of input before STOP.
    Truncated,
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Stop::Truncated
        } else {
            Stop::Io(e)
        }
    }
}

/// Counting reader with the number of bytes left in the input.
///
/// It also follows CPython's C unpickler reading from a file without `peek` (or a frame larger
/// than its prefetch): `FRAME` reads the frame into a buffer, and a read that runs past the end
/// of that buffer discards what is left of it and continues from the file. `loads` (and a file
/// with `peek`) reads the same bytes linearly. `discard` selects the file behaviour; `crossed`
/// records where the two differ.
struct Input<R> {
    inner: R,
    pos: u64,
    len: u64,
    /// Bytes left in the current frame buffer (0: no frame).
    frame_left: u64,
    discard: bool,
    crossed: Option<u64>,
}

impl<R: BufRead> Input<R> {
    fn new(inner: R, len: u64, discard: bool) -> Self {
        Self {
            inner,
            pos: 0,
            len,
            frame_left: 0,
            discard,
            crossed: None,
        }
    }

    /// Accounts for a read of `n` bytes against the frame buffer.
    fn enter(&mut self, n: u64) -> Result<(), Stop> {
        if self.frame_left == 0 {
            return Ok(());
        }
        if n <= self.frame_left {
            self.frame_left -= n;
            return Ok(());
        }
        self.cross()
    }

    /// A read runs past the frame buffer: the two loaders part here.
    fn cross(&mut self) -> Result<(), Stop> {
        self.crossed.get_or_insert(self.pos);
        let rest = std::mem::take(&mut self.frame_left);
        if self.discard {
            let copied = io::copy(&mut (&mut self.inner).take(rest), &mut io::sink())?;
            self.pos += copied;
            if copied != rest {
                return Err(Stop::Truncated);
            }
        }
        Ok(())
    }

    /// FRAME: CPython reads the whole frame first, so a frame beyond the input is refused.
    fn frame(&mut self, n: u64) -> Result<(), Stop> {
        if n > self.remaining() {
            return Err(Stop::Invalid(format!(
                "FRAME declares {n} bytes but only {} remain (CPython refuses the pickle here)",
                self.remaining()
            )));
        }
        if self.frame_left >= n {
            return Ok(());
        }
        if self.frame_left > 0 {
            self.cross()?;
        }
        self.frame_left = n;
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        self.enter(1)?;
        let mut b = [0u8; 1];
        self.inner.read_exact(&mut b)?;
        self.pos += 1;
        Ok(b[0])
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Stop> {
        self.enter(N as u64)?;
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }

    /// A little-endian length field of `N` bytes (at most 8).
    fn length<const N: usize>(&mut self) -> Result<u64, Stop> {
        let mut b = [0u8; 8];
        b[..N].copy_from_slice(&self.fixed::<N>()?);
        Ok(u64::from_le_bytes(b))
    }

    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Reads `n` bytes, refusing lengths beyond the input before allocating.
    fn take(&mut self, n: u64) -> Result<Vec<u8>, Stop> {
        if n > self.remaining() {
            return Err(Stop::Invalid(format!(
                "a length field claims {n} bytes but only {} remain",
                self.remaining()
            )));
        }
        self.enter(n)?;
        if n > self.remaining() {
            return Err(Stop::Truncated);
        }
        let mut buf = Vec::with_capacity(n as usize);
        (&mut self.inner).take(n).read_to_end(&mut buf)?;
        if buf.len() as u64 != n {
            return Err(Stop::Truncated);
        }
        self.pos += n;
        Ok(buf)
    }

    fn skip(&mut self, n: u64) -> Result<(), Stop> {
        if n > self.remaining() {
            return Err(Stop::Invalid(format!(
                "a length field claims {n} bytes but only {} remain",
                self.remaining()
            )));
        }
        self.enter(n)?;
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        if copied != n {
            return Err(Stop::Truncated);
        }
        self.pos += n;
        Ok(())
    }

    /// A `\n`-terminated line of protocol-0 text (names, numbers), capped.
    fn line(&mut self) -> Result<Vec<u8>, Stop> {
        self.line_within(LINE_CAP)
    }

    /// A `\n`-terminated line of at most `cap` bytes. A line that does not end inside the frame
    /// buffer is where file and bytes loading part: the file loader drops the frame's rest and
    /// reads the line afresh after it, however long that rest is (so the whole frame rest is
    /// searched for the newline, keeping at most `cap` bytes of it).
    fn line_within(&mut self, cap: u64) -> Result<Vec<u8>, Stop> {
        let mut line = Vec::new();
        if self.frame_left > 0 {
            let start = self.pos;
            let mut too_long = false;
            let mut ended = false;
            while self.frame_left > 0 && !ended {
                let buf = self.inner.fill_buf()?;
                if buf.is_empty() {
                    return Err(Stop::Truncated);
                }
                let window = &buf[..buf.len().min(self.frame_left as usize)];
                let (used, found) = match window.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (window.len(), false),
                };
                let room = cap.saturating_sub(line.len() as u64) as usize;
                too_long |= used > room;
                line.extend_from_slice(&window[..used.min(room)]);
                self.inner.consume(used);
                self.pos += used as u64;
                self.frame_left -= used as u64;
                ended = found;
            }
            if !ended {
                self.crossed.get_or_insert(start);
                if self.discard {
                    line.clear();
                    too_long = false;
                }
            }
            if too_long {
                return Err(Stop::Invalid("text line too long or unterminated".into()));
            }
        }
        if line.last() != Some(&b'\n') {
            let room = cap.saturating_sub(line.len() as u64);
            let n = (&mut self.inner).take(room).read_until(b'\n', &mut line)?;
            self.pos += n as u64;
        }
        if line.last() != Some(&b'\n') {
            return Err(if line.is_empty() {
                Stop::Truncated
            } else {
                Stop::Invalid("text line too long or unterminated".into())
            });
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(line)
    }

    fn at_eof(&mut self) -> io::Result<bool> {
        Ok(self.inner.fill_buf()?.is_empty())
    }
}

/// What one pickle amounted to.
struct Outcome {
    top: Option<V>,
    saw_joblib: bool,
    /// Bytes of the input consumed, and whether any global or call was seen.
    globals_seen: usize,
}

struct Vm<'c, 'l> {
    ctx: &'c mut Ctx<'l>,
    stack: Vec<V>,
    marks: Vec<usize>,
    memo: Memo,
    retained: usize,
    ops: u64,
    /// Where in the enclosing blob this pickle started (for locations).
    base: u64,
    saw_joblib: bool,
    globals_seen: usize,
    /// Nested payloads found in loader calls, scanned after the pickle.
    nested: Vec<(String, Rc<[u8]>)>,
    /// Standard-library names imported but not (yet) called: (module, name, offset, opcode).
    /// A bare import of a stdlib type runs nothing; a call of one is reported.
    pending: Vec<(String, String, u64, &'static str)>,
    /// Offset of the opcode being executed.
    offset: u64,
    expansion_reported: bool,
    depth_reported: bool,
    hash_depth_reported: bool,
}

impl<'c, 'l> Vm<'c, 'l> {
    fn new(ctx: &'c mut Ctx<'l>, base: u64) -> Self {
        Self {
            ctx,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Memo::default(),
            retained: 0,
            ops: 0,
            base,
            saw_joblib: false,
            globals_seen: 0,
            nested: Vec::new(),
            pending: Vec::new(),
            offset: 0,
            expansion_reported: false,
            depth_reported: false,
            hash_depth_reported: false,
        }
    }

    /// Reports a container whose expanded size dwarfs the pickle (billion laughs through memo
    /// and DUP references): loading is cheap, but anything that walks the object explodes.
    fn check_expansion(&mut self, weight: u64) {
        if self.expansion_reported
            || weight < EXPANSION_MIN
            || weight / EXPANSION_RATIO <= self.offset.max(1)
        {
            return;
        }
        self.expansion_reported = true;
        self.ctx.add(
            "pickle-expansion",
            Verdict::Suspicious,
            self.location(self.offset),
            format!("shared references (memo GET, DUP) make a container of about {weight} elements out of {} bytes: walking, copying or saving the loaded object exhausts memory and time", self.offset),
            Some(weight.to_string()),
        );
    }

    #[inline(always)]
    fn push(&mut self, v: V) -> Result<(), Stop> {
        if self.stack.len() >= self.ctx.limits.pickle_max_stack {
            return Err(Stop::Limit(format!(
                "stack deeper than {}",
                self.ctx.limits.pickle_max_stack
            )));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Result<V, Stop> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(Stop::Invalid("pop across a mark".into()));
        }
        self.stack
            .pop()
            .ok_or_else(|| Stop::Invalid("stack underflow".into()))
    }

    fn top(&mut self) -> Result<&mut V, Stop> {
        self.stack
            .last_mut()
            .ok_or_else(|| Stop::Invalid("stack underflow".into()))
    }

    fn pop_mark(&mut self) -> Result<Vec<V>, Stop> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| Stop::Invalid("no mark on the stack".into()))?;
        if mark > self.stack.len() {
            return Err(Stop::Invalid("mark beyond the stack".into()));
        }
        Ok(self.stack.split_off(mark))
    }

    fn location(&self, offset: u64) -> String {
        format!("offset {}", self.base + offset)
    }

    /// Executes one pickle up to STOP. Every opcode is one arm of a single dispatch: the
    /// simplest act in place, the others call their handler, defined below by group (stack and
    /// memo, strings, containers, imports, calls; scalar arguments are parsed by free functions).
    /// Handlers are called from here only and are `#[inline(always)]`, so the loop compiles
    /// to one function with one jump per opcode: this is the hot path of scanning large pickles.
    fn run(&mut self, input: &mut Input<impl BufRead>) -> Result<V, Stop> {
        let max_ops = self.ctx.limits.pickle_max_ops;
        let text_cap = (self.ctx.limits.pickle_max_retained_bytes as u64).max(LINE_CAP);
        loop {
            self.ops += 1;
            if self.ops > max_ops {
                return Err(Stop::Limit(format!("more than {max_ops} opcodes")));
            }
            let offset = input.pos;
            self.offset = offset;
            let op = input.byte()?;
            match op {
                // Framing.
                b'.' => return self.pop(),
                0x80 => protocol(input.byte()?)?,
                0x95 => {
                    let n = input.length::<8>()?;
                    input.frame(n)?;
                }
                // Stack and memo.
                b'(' => self.mark()?,
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => self.dup()?,
                b'g' => self.get(memo_key(&input.line()?, "GET")?)?,
                b'h' => self.get(input.byte()? as u32)?,
                b'j' => self.get(u32::from_le_bytes(input.fixed()?))?,
                b'p' => self.put(memo_key(&input.line()?, "PUT")?)?,
                b'q' => self.put(input.byte()? as u32)?,
                b'r' => self.put(u32::from_le_bytes(input.fixed()?))?,
                0x94 => self.memoize()?,
                // Scalars.
                b'F' => self.push(float_text(&input.line()?)?)?,
                b'I' => self.push(int_text(&input.line()?)?)?,
                b'L' => self.push(long_text(&input.line()?)?)?,
                b'J' => self.push(V::Int(i32::from_le_bytes(input.fixed()?) as i128))?,
                b'K' => self.push(V::Int(input.byte()? as i128))?,
                b'M' => self.push(V::Int(u16::from_le_bytes(input.fixed()?) as i128))?,
                0x8a => self.push(long1(input)?)?,
                0x8b => self.push(long4(input)?)?,
                b'N' => self.push(V::None)?,
                0x88 => self.push(V::Bool(true))?,
                0x89 => self.push(V::Bool(false))?,
                b'G' => self.push(binfloat(input)?)?,
                // Strings, bytes and buffers.
                b'S' => self.string(&input.line_within(text_cap)?)?,
                b'V' => self.unicode(&input.line_within(text_cap)?)?,
                b'T' => self.binstring(input)?,
                b'U' => self.short_binstring(input)?,
                b'X' => self.binunicode::<4>(input)?,
                0x8c => self.binunicode::<1>(input)?,
                0x8d => self.binunicode::<8>(input)?,
                b'B' => self.binbytes::<4>(input)?,
                b'C' => self.binbytes::<1>(input)?,
                0x8e | 0x96 => self.binbytes::<8>(input)?,
                0x97 => self.push(V::Opaque)?,
                0x98 => {}
                // Containers.
                b')' => self.push(new_tuple(Vec::new()))?,
                b't' => self.tuple()?,
                0x85..=0x87 => self.small_tuple((op - 0x84) as usize)?,
                b']' => self.push(new_list(Vec::new()))?,
                b'l' => self.list()?,
                b'}' => self.push(new_dict(Vec::new()))?,
                b'd' => self.dict()?,
                0x8f => self.push(V::Set)?,
                0x91 => self.frozenset()?,
                b'a' => self.append_one()?,
                b'e' => self.appends()?,
                0x90 => self.additems()?,
                b's' => self.setitem()?,
                b'u' => self.setitems()?,
                // Imports.
                b'c' => self.text_global(input, offset)?,
                0x93 => self.stack_global(offset)?,
                0x82..=0x84 => self.ext(op, input, offset)?,
                // Calls.
                b'i' => self.inst(input, offset)?,
                b'o' => self.obj(offset)?,
                b'R' => self.call_from_stack(offset, "REDUCE")?,
                0x81 => self.call_from_stack(offset, "NEWOBJ")?,
                0x92 => self.newobj_ex(offset)?,
                b'b' => self.build(input, offset)?,
                b'P' => {
                    input.line()?;
                    self.push(V::PersistentId)?;
                }
                b'Q' => self.binpersid()?,
                other => {
                    return Err(Stop::Invalid(format!(
                        "undefined opcode 0x{other:02x} at offset {}",
                        self.base + offset
                    )));
                }
            }
        }
    }
}

/// Stack and memo opcodes.
impl Vm<'_, '_> {
    /// MARK.
    #[inline(always)]
    fn mark(&mut self) -> Result<(), Stop> {
        if self.marks.len() >= self.ctx.limits.pickle_max_stack {
            return Err(Stop::Limit("too many marks".into()));
        }
        self.marks.push(self.stack.len());
        Ok(())
    }

    /// DUP.
    #[inline(always)]
    fn dup(&mut self) -> Result<(), Stop> {
        let v = self.top()?.clone();
        self.push(v)
    }

    /// MEMOIZE: PUT under the next free key.
    #[inline(always)]
    fn memoize(&mut self) -> Result<(), Stop> {
        let key =
            u32::try_from(self.memo.len).map_err(|_| Stop::Limit("memo keys exhausted".into()))?;
        self.put(key)
    }

    fn get(&mut self, key: u32) -> Result<(), Stop> {
        if !self.memo.contains(key) {
            return Err(Stop::Invalid(format!("memo key {key} was never stored")));
        }
        let v = match self.memo.kept.get(&key) {
            Some(v) => v.clone(),
            None => match self.memo.shapes.get(&key) {
                Some((shape, hashable)) => V::Shared(shape.clone(), *hashable),
                None => V::Opaque,
            },
        };
        self.push(v)
    }

    fn put(&mut self, key: u32) -> Result<(), Stop> {
        let v = self.top()?.clone();
        let limit = self.ctx.limits.pickle_max_memo;
        self.memo.insert(key, v, limit)
    }
}

/// String and bytes opcodes.
impl Vm<'_, '_> {
    /// STRING: a quoted protocol-0 string.
    #[inline(always)]
    fn string(&mut self, line: &[u8]) -> Result<(), Stop> {
        let s = parse_quoted(line)?;
        let v = self.keep_str(s);
        self.push(v)
    }

    /// UNICODE: raw-unicode-escaped protocol-0 text.
    #[inline(always)]
    fn unicode(&mut self, line: &[u8]) -> Result<(), Stop> {
        let s = String::from_utf8_lossy(line).into_owned();
        let v = self.keep_str(unescape_raw_unicode(&s));
        self.push(v)
    }

    /// BINSTRING: Python 2 str with a signed four-byte length.
    #[inline(always)]
    fn binstring(&mut self, input: &mut Input<impl BufRead>) -> Result<(), Stop> {
        let n = i32::from_le_bytes(input.fixed()?);
        if n < 0 {
            return Err(Stop::Invalid("negative BINSTRING length".into()));
        }
        let v = self.latin1_value(input, n as u64)?;
        self.push(v)
    }

    /// SHORT_BINSTRING: Python 2 str with a one-byte length.
    #[inline(always)]
    fn short_binstring(&mut self, input: &mut Input<impl BufRead>) -> Result<(), Stop> {
        let n = input.byte()? as u64;
        let v = self.latin1_value(input, n)?;
        self.push(v)
    }

    /// SHORT_BINUNICODE, BINUNICODE and BINUNICODE8 (length fields of `N` bytes).
    #[inline(always)]
    fn binunicode<const N: usize>(&mut self, input: &mut Input<impl BufRead>) -> Result<(), Stop> {
        let n = input.length::<N>()?;
        let v = self.str_value(input, n)?;
        self.push(v)
    }

    /// SHORT_BINBYTES, BINBYTES and BINBYTES8 or BYTEARRAY8 (length fields of `N` bytes).
    #[inline(always)]
    fn binbytes<const N: usize>(&mut self, input: &mut Input<impl BufRead>) -> Result<(), Stop> {
        let n = input.length::<N>()?;
        let v = self.bytes_value(input, n)?;
        self.push(v)
    }

    fn latin1_value(&mut self, input: &mut Input<impl BufRead>, n: u64) -> Result<V, Stop> {
        if n as usize <= SMALL_STRING
            || (self.retained as u64).saturating_add(n)
                <= self.ctx.limits.pickle_max_retained_bytes as u64
        {
            let data = input.take(n)?;
            self.retained += data.len();
            // Python 2 str: names are ASCII; keep the bytes too for nested payloads.
            match String::from_utf8(data.clone()) {
                Ok(s) => Ok(V::Str(s.into())),
                Err(_) => Ok(V::Bytes(Some(data.into()))),
            }
        } else {
            input.skip(n)?;
            Ok(V::Opaque)
        }
    }

    fn keep_str(&mut self, s: String) -> V {
        if s.len() <= SMALL_STRING
            || self.retained + s.len() <= self.ctx.limits.pickle_max_retained_bytes
        {
            self.retained += s.len();
            V::Str(s.into())
        } else {
            V::Opaque
        }
    }

    fn bytes_value(&mut self, input: &mut Input<impl BufRead>, n: u64) -> Result<V, Stop> {
        if (self.retained as u64).saturating_add(n)
            <= self.ctx.limits.pickle_max_retained_bytes as u64
        {
            let data = input.take(n)?;
            self.retained += data.len();
            Ok(V::Bytes(Some(data.into())))
        } else {
            input.skip(n)?;
            Ok(V::Bytes(None))
        }
    }

    fn str_value(&mut self, input: &mut Input<impl BufRead>, n: u64) -> Result<V, Stop> {
        if n as usize <= SMALL_STRING
            || (self.retained as u64).saturating_add(n)
                <= self.ctx.limits.pickle_max_retained_bytes as u64
        {
            let data = input.take(n)?;
            let s =
                String::from_utf8(data).map_err(|_| Stop::Invalid("string is not UTF-8".into()))?;
            Ok(self.keep_str(s))
        } else {
            input.skip(n)?;
            Ok(V::Opaque)
        }
    }
}

/// Container opcodes.
impl Vm<'_, '_> {
    /// TUPLE: the items above the mark.
    #[inline(always)]
    fn tuple(&mut self) -> Result<(), Stop> {
        let items = self.pop_mark()?;
        if items.len() > CONTAINER_ITEMS {
            // Keep the expanded size of what is dropped in one stand-in item.
            let dropped = items[CONTAINER_ITEMS - 1..]
                .iter()
                .fold(0u64, |acc, i| acc.saturating_add(i.weight()));
            let depth = items[CONTAINER_ITEMS - 1..]
                .iter()
                .map(V::depth)
                .max()
                .unwrap_or(0);
            let mut kept = cap(items);
            kept[CONTAINER_ITEMS - 1] = V::Shared(Shape::new(dropped, depth), true);
            let tuple = new_tuple(kept);
            self.note_depth(tuple.depth(), false);
            return self.push(tuple);
        }
        let tuple = new_tuple(items);
        self.note_depth(tuple.depth(), false);
        self.check_expansion(tuple.weight());
        self.push(tuple)
    }

    /// TUPLE1, TUPLE2 and TUPLE3.
    #[inline(always)]
    fn small_tuple(&mut self, n: usize) -> Result<(), Stop> {
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.pop()?);
        }
        items.reverse();
        let tuple = new_tuple(items);
        self.note_depth(tuple.depth(), false);
        self.push(tuple)
    }

    /// LIST: the items above the mark.
    #[inline(always)]
    fn list(&mut self) -> Result<(), Stop> {
        let items = self.pop_mark()?;
        let list = new_list(Vec::new());
        self.push(list)?;
        self.append(items)
    }

    /// DICT: the key-value pairs above the mark.
    #[inline(always)]
    fn dict(&mut self) -> Result<(), Stop> {
        let items = self.pop_mark()?;
        self.push(new_dict(Vec::new()))?;
        self.set_items(items)
    }

    /// FROZENSET: the items above the mark (not modelled beyond hashability).
    #[inline(always)]
    fn frozenset(&mut self) -> Result<(), Stop> {
        let items = self.pop_mark()?;
        require_hashable(&items, "FROZENSET")?;
        for item in &items {
            self.note_depth(item.depth(), true);
        }
        self.push(V::Set)
    }

    /// APPEND.
    #[inline(always)]
    fn append_one(&mut self) -> Result<(), Stop> {
        let item = self.pop()?;
        self.append(vec![item])
    }

    /// APPENDS: the items above the mark.
    #[inline(always)]
    fn appends(&mut self) -> Result<(), Stop> {
        let items = self.pop_mark()?;
        self.append(items)
    }

    /// ADDITEMS: the items above the mark, into a set.
    #[inline(always)]
    fn additems(&mut self) -> Result<(), Stop> {
        let items = self.pop_mark()?;
        require_hashable(&items, "ADDITEMS")?;
        for item in &items {
            self.note_depth(item.depth(), true);
        }
        match self.top()? {
            V::Set => Ok(()),
            other => Err(Stop::Invalid(format!("ADDITEMS on {}", other.describe()))),
        }
    }

    /// SETITEM.
    #[inline(always)]
    fn setitem(&mut self) -> Result<(), Stop> {
        let value = self.pop()?;
        let key = self.pop()?;
        self.set_items(vec![key, value])
    }

    /// SETITEMS: the key-value pairs above the mark.
    #[inline(always)]
    fn setitems(&mut self) -> Result<(), Stop> {
        let items = self.pop_mark()?;
        self.set_items(items)
    }

    fn append(&mut self, items: Vec<V>) -> Result<(), Stop> {
        let added = items
            .iter()
            .fold(0u64, |acc, i| acc.saturating_add(i.weight()));
        let items: Vec<V> = items.into_iter().map(detach).collect();
        let (list, shape) = match self.top()? {
            V::List(list, shape) => (Some(list.clone()), shape.clone()),
            V::Shared(shape, _) => (None, shape.clone()),
            // APPEND on other objects calls their `append`/`extend` method.
            V::Call(..) | V::Opaque => return Ok(()),
            other => return Err(Stop::Invalid(format!("APPEND on {}", other.describe()))),
        };
        self.nest(&shape, items.iter());
        if let Some(list) = list {
            fill(&mut list.borrow_mut(), items, CONTAINER_ITEMS);
        }
        shape.weight.set(shape.weight.get().saturating_add(added));
        self.check_expansion(shape.weight.get());
        Ok(())
    }

    /// Records that `items` were placed in the container of shape `parent`: its depth grows
    /// from below, theirs from above (a container filled after it was placed).
    fn nest<'v>(&mut self, parent: &Rc<Shape>, items: impl Iterator<Item = &'v V>) {
        let before = parent.depth.get();
        for item in items {
            let depth = item.depth();
            if depth == 0 {
                continue;
            }
            if let V::List(_, s) | V::Dict(_, s) | V::Shared(s, _) = item {
                if Rc::ptr_eq(s, parent) {
                    continue; // a container holding itself nests no deeper
                }
                s.level
                    .set(s.level.get().max(parent.level.get().saturating_add(1)));
                self.note_depth(s.reach(), false);
            }
            parent
                .depth
                .set(parent.depth.get().max(depth.saturating_add(1)));
        }
        if parent.depth.get() != before {
            self.note_depth(parent.reach(), false);
        }
    }

    /// Reports nesting deeper than CPython handles: deeper than its recursion limit is
    /// suspicious; a dict key or set member too deep to hash crashes the loader (malformed).
    /// The parse goes on either way, so a call after it is still seen.
    #[inline(always)]
    fn note_depth(&mut self, depth: u32, hashed: bool) {
        if depth <= RECURSION_LIMIT {
            return;
        }
        if hashed && depth > HASH_DEPTH_LIMIT && !self.hash_depth_reported {
            self.hash_depth_reported = true;
            self.ctx.add(
                "pickle-deep-nesting",
                Verdict::Malformed,
                self.location(self.offset),
                format!("a dict key or set member nests {depth} containers deep: CPython hashes it recursively on the C stack and crashes (beyond about {HASH_DEPTH_LIMIT} levels on a 1 MiB stack, 130,000 on Linux's 8 MiB); no pickler writes this"),
                Some(depth.to_string()),
            );
        }
        if !self.depth_reported {
            self.depth_reported = true;
            self.ctx.add(
                "pickle-deep-nesting",
                Verdict::Suspicious,
                self.location(self.offset),
                format!("a value nests more than {RECURSION_LIMIT} containers deep (CPython's recursion limit): pickle.dumps cannot write it, and comparing, hashing equal keys, printing, copying or saving the loaded object raises RecursionError or crashes"),
                Some(depth.to_string()),
            );
        }
    }

    /// SETITEM(S) and DICT: `items` alternate keys and values (kept flat: pairing them would
    /// copy every item of a large pickle once more).
    fn set_items(&mut self, items: Vec<V>) -> Result<(), Stop> {
        if !items.len().is_multiple_of(2) {
            return Err(Stop::Invalid("odd number of dictionary items".into()));
        }
        if let Some(key) = items.iter().step_by(2).find(|k| !k.hashable()) {
            // CPython raises TypeError here (e.g. a dict used as a key of itself).
            return Err(Stop::Invalid(format!(
                "unhashable dictionary key ({}): CPython refuses the pickle here",
                key.describe()
            )));
        }
        for key in items.iter().step_by(2) {
            self.note_depth(key.depth(), true);
        }
        let added = items
            .iter()
            .fold(0u64, |acc, i| acc.saturating_add(i.weight()));
        let items: Vec<V> = items.into_iter().map(detach).collect();
        let (dict, shape) = match self.top()? {
            V::Dict(dict, shape) => (Some(dict.clone()), shape.clone()),
            V::Shared(shape, _) => (None, shape.clone()),
            // SETITEM on other objects calls their `__setitem__`.
            V::Call(..) | V::Opaque => return Ok(()),
            other => return Err(Stop::Invalid(format!("SETITEM on {}", other.describe()))),
        };
        self.nest(&shape, items.iter());
        if let Some(dict) = dict {
            fill(&mut dict.borrow_mut(), items, 2 * CONTAINER_ITEMS);
        }
        shape.weight.set(shape.weight.get().saturating_add(added));
        self.check_expansion(shape.weight.get());
        Ok(())
    }
}

/// Adds `items` to a container's kept items, up to `cap` in all. The first batch into an empty
/// container (most containers get only one) is moved in, not copied.
fn fill(kept: &mut Vec<V>, mut items: Vec<V>, cap: usize) {
    if kept.is_empty() && items.len() <= cap {
        *kept = items;
    } else {
        items.truncate(cap.saturating_sub(kept.len()));
        kept.append(&mut items);
    }
}

/// Import opcodes: every way a pickle names a callable.
impl Vm<'_, '_> {
    /// GLOBAL: module and name as text lines.
    #[inline(always)]
    fn text_global(&mut self, input: &mut Input<impl BufRead>, offset: u64) -> Result<(), Stop> {
        let module = input.line()?;
        let name = input.line()?;
        let (module, name) = (identifier(&module)?, identifier(&name)?);
        self.on_global(&module, &name, offset, "GLOBAL");
        self.push(V::Global(Rc::new((module, name))))
    }

    /// STACK_GLOBAL: module and name from the stack, which a pickle can compute.
    #[inline(always)]
    fn stack_global(&mut self, offset: u64) -> Result<(), Stop> {
        let name = self.pop()?;
        let module = self.pop()?;
        match (module.as_str(), name.as_str()) {
            (Some(m), Some(n)) => {
                let (m, n) = (m.to_string(), n.to_string());
                self.on_global(&m, &n, offset, "STACK_GLOBAL");
                self.push(V::Global(Rc::new((m, n))))
            }
            _ => {
                self.globals_seen += 1;
                let evidence = format!("{} . {}", module.describe(), name.describe());
                self.ctx.add(
                    "pickle-dynamic-global",
                    Verdict::Malicious,
                    self.location(offset),
                    "STACK_GLOBAL imports a name computed at load time (not a literal string): the callable cannot be known before it runs",
                    Some(evidence),
                );
                self.push(V::Global(Rc::new(("<dynamic>".into(), "<dynamic>".into()))))
            }
        }
    }

    /// EXT1, EXT2 and EXT4: a callable from the copyreg extension registry.
    #[inline(always)]
    fn ext(&mut self, op: u8, input: &mut Input<impl BufRead>, offset: u64) -> Result<(), Stop> {
        let code = match op {
            0x82 => input.byte()? as u32,
            0x83 => u16::from_le_bytes(input.fixed()?) as u32,
            _ => u32::from_le_bytes(input.fixed()?),
        };
        self.globals_seen += 1;
        self.ctx.add(
            "pickle-extension-registry",
            Verdict::Suspicious,
            self.location(offset),
            format!("imports a callable through the copyreg extension registry (code {code}); which one depends on the loading process"),
            Some(format!("extension code {code}")),
        );
        self.push(V::Global(Rc::new(("<extension>".into(), code.to_string()))))
    }

    /// Checks an imported callable against the policy.
    fn on_global(&mut self, module: &str, name: &str, offset: u64, via: &'static str) {
        self.globals_seen += 1;
        if module == "joblib.numpy_pickle" {
            self.saw_joblib = true;
        }
        let evidence = Some(format!("{module}.{name}"));
        if policy::community_denied(&self.ctx.limits.extra_deny, module, name) {
            self.ctx.add(
                "pickle-community-rule",
                Verdict::Malicious,
                self.location(offset),
                format!("imports {module}.{name} ({via}), which a community rule denies"),
                evidence,
            );
            return;
        }
        match policy::classify(module, name) {
            Class::Allowed => {}
            Class::Dangerous(why) => self.ctx.add(
                "pickle-dangerous-global",
                Verdict::Malicious,
                self.location(offset),
                format!("imports {module}.{name} ({via}): {why}; loading this file runs it"),
                evidence,
            ),
            Class::Unknown if policy::is_stdlib(module) && self.pending.len() < 256 => {
                self.pending
                    .push((module.to_string(), name.to_string(), offset, via));
            }
            Class::Unknown => self.unknown_global(module, name, offset, via, "imports"),
        }
    }

    fn unknown_global(&mut self, module: &str, name: &str, offset: u64, via: &str, what: &str) {
        self.ctx.add(
            "pickle-unknown-global",
            Verdict::Suspicious,
            self.location(offset),
            format!("{what} {module}.{name} ({via}), which is not on the allow list of tensor and container rebuild functions; it cannot be vetted statically"),
            Some(format!("{module}.{name}")),
        );
    }

    /// A standard-library name imported earlier is called (or handed to a call): report it.
    fn used(&mut self, value: &V) {
        let Some((module, name)) = value.global() else {
            return;
        };
        if let Some(at) = self
            .pending
            .iter()
            .position(|(m, n, _, _)| m == module && n == name)
        {
            let (module, name, offset, via) = self.pending.swap_remove(at);
            self.unknown_global(&module, &name, offset, via, "calls");
        }
    }
}

/// Call opcodes: every way a pickle calls something or hands data to the loader.
impl Vm<'_, '_> {
    /// INST: GLOBAL and a call with the items above the mark.
    #[inline(always)]
    fn inst(&mut self, input: &mut Input<impl BufRead>, offset: u64) -> Result<(), Stop> {
        let module = input.line()?;
        let name = input.line()?;
        let (module, name) = (identifier(&module)?, identifier(&name)?);
        self.on_global(&module, &name, offset, "INST");
        let args = self.pop_mark()?;
        let callable = V::Global(Rc::new((module, name)));
        let args = args_tuple(args);
        self.on_call(&callable, &args, offset, "INST");
        self.push_call(callable, args)
    }

    /// OBJ: a call of the first item above the mark with the others.
    #[inline(always)]
    fn obj(&mut self, offset: u64) -> Result<(), Stop> {
        let mut items = self.pop_mark()?;
        if items.is_empty() {
            return Err(Stop::Invalid("OBJ without a class".into()));
        }
        let callable = items.remove(0);
        let args = args_tuple(items);
        self.on_call(&callable, &args, offset, "OBJ");
        self.push_call(callable, args)
    }

    /// REDUCE and NEWOBJ: a call of the callable below the arguments.
    #[inline(always)]
    fn call_from_stack(&mut self, offset: u64, opcode: &str) -> Result<(), Stop> {
        let args = self.pop()?;
        let callable = self.pop()?;
        self.on_call(&callable, &args, offset, opcode);
        self.push_call(callable, args)
    }

    /// Pushes the result of a call, noting how deep it nests.
    fn push_call(&mut self, callable: V, args: V) -> Result<(), Stop> {
        let result = new_call(callable, args);
        self.note_depth(result.depth(), false);
        self.push(result)
    }

    /// NEWOBJ_EX: NEWOBJ with keyword arguments.
    #[inline(always)]
    fn newobj_ex(&mut self, offset: u64) -> Result<(), Stop> {
        let _kwargs = self.pop()?;
        let args = self.pop()?;
        let class = self.pop()?;
        self.on_call(&class, &args, offset, "NEWOBJ_EX");
        self.push_call(class, args)
    }

    /// BUILD: the state goes into the object below it, which stays on the stack.
    #[inline(always)]
    fn build(&mut self, input: &mut Input<impl BufRead>, offset: u64) -> Result<(), Stop> {
        let state = self.pop()?;
        let target = self.top()?.clone();
        self.on_build(&target, &state, offset, input)
    }

    /// BINPERSID: a persistent id from the stack (PyTorch's storages).
    #[inline(always)]
    fn binpersid(&mut self) -> Result<(), Stop> {
        let pid = self.pop()?;
        self.record_storage(&pid);
        self.push(V::PersistentId)
    }

    /// PyTorch's persistent ids: `('storage', <storage type>, key, location, numel)`.
    fn record_storage(&mut self, pid: &V) {
        let V::Tuple(items, _) = pid else { return };
        if items.len() < 5
            || items[0].as_str() != Some("storage")
            || self.ctx.storage_refs.len() >= 1_000_000
        {
            return;
        }
        let (Some((_, kind)), Some(key), V::Int(numel)) =
            (items[1].global(), items[2].as_str(), &items[4])
        else {
            return;
        };
        if *numel >= 0 {
            self.ctx
                .storage_refs
                .push((key.to_string(), kind.to_string(), *numel as u64));
        }
    }

    fn on_build(
        &mut self,
        target: &V,
        state: &V,
        offset: u64,
        input: &mut Input<impl BufRead>,
    ) -> Result<(), Stop> {
        if let Some(value) = setstate_in(state) {
            self.ctx.add(
                "pickle-setstate-injection",
                Verdict::Malicious,
                self.location(offset),
                format!("BUILD puts a __setstate__ ({}) into an object's attributes: the loader calls it with the state of the next BUILD on that object, a call no REDUCE shows (fickling GHSA-mhc9-48gj-9gp3)", value.describe()),
                Some(value.describe()),
            );
        }
        match target {
            V::Global(g) => {
                self.ctx.add(
                    "pickle-global-mutation",
                    Verdict::Malicious,
                    self.location(offset),
                    format!("BUILD sets attributes on the imported object {}.{} itself, which changes code that later runs", g.0, g.1),
                    Some(format!("{}.{}", g.0, g.1)),
                );
            }
            V::Call(call, _)
                if call.0.global() == Some(("joblib.numpy_pickle", "NumpyArrayWrapper")) =>
            {
                self.skip_joblib_array(state, input)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// joblib writes each array's raw bytes right after the BUILD of its NumpyArrayWrapper;
    /// skip them (checked against the input) so the rest of the stream parses.
    fn skip_joblib_array(
        &mut self,
        state: &V,
        input: &mut Input<impl BufRead>,
    ) -> Result<(), Stop> {
        let V::Dict(dict, _) = state else {
            return Ok(());
        };
        let dict = dict.borrow();
        let field = |name: &str| {
            dict.chunks_exact(2)
                .find(|kv| kv[0].as_str() == Some(name))
                .map(|kv| kv[1].clone())
        };
        let dtype = field("dtype");
        let code = match &dtype {
            Some(V::Call(call, _))
                if call
                    .0
                    .global()
                    .is_some_and(|(m, n)| m.starts_with("numpy") && n == "dtype") =>
            {
                match &call.1 {
                    V::Tuple(args, _) => args.first().and_then(V::as_str).map(str::to_string),
                    _ => None,
                }
            }
            _ => None,
        };
        let Some(code) = code else {
            return Err(Stop::Invalid(
                "joblib array without a readable dtype".into(),
            ));
        };
        if code == "O" || code == "|O" {
            // Object arrays are pickled inline: nothing raw to skip.
            return Ok(());
        }
        let itemsize = crate::numpy::itemsize(&code)
            .ok_or_else(|| Stop::Invalid(format!("joblib array with unsupported dtype {code}")))?;
        let mut count: u64 = 1;
        match field("shape") {
            Some(V::Tuple(dims, _)) => {
                for d in dims.iter() {
                    match d {
                        V::Int(n) if *n >= 0 => {
                            count = count.checked_mul(*n as u64).ok_or_else(|| {
                                Stop::Invalid("joblib array shape overflows".into())
                            })?;
                        }
                        _ => {
                            return Err(Stop::Invalid(
                                "joblib array shape is not a tuple of sizes".into(),
                            ));
                        }
                    }
                }
            }
            _ => return Err(Stop::Invalid("joblib array without a shape".into())),
        }
        if field("numpy_array_alignment_bytes").is_some() {
            let padding = input.byte()? as u64;
            input.skip(padding)?;
        }
        let nbytes = count
            .checked_mul(itemsize)
            .ok_or_else(|| Stop::Invalid("joblib array size overflows".into()))?;
        input.skip(nbytes)
    }

    /// Checks a call: only imported callables may be called, and loader calls get their byte
    /// arguments scanned as files.
    fn on_call(&mut self, callable: &V, args: &V, offset: u64, opcode: &str) {
        if !self.pending.is_empty() {
            self.used(callable);
            if let V::Tuple(items, _) = args {
                items.iter().for_each(|i| self.used(i));
            }
        }
        match callable {
            V::Global(g) => {
                if policy::is_loader(&g.0, &g.1) {
                    let mut payloads = Vec::new();
                    collect_bytes(args, &mut payloads, 0);
                    for payload in payloads {
                        self.nested.push((format!("{}.{}", g.0, g.1), payload));
                    }
                }
            }
            other => self.ctx.add(
                "pickle-dynamic-call",
                Verdict::Malicious,
                self.location(offset),
                format!("{opcode} calls a computed value ({}) rather than an imported callable: a known way to reach code execution", other.describe()),
                Some(other.describe()),
            ),
        }
    }
}

/// Dense memo keys tracked in the bitset (16 MiB at most); larger keys use a capped set.
const DENSE_KEYS: u32 = 1 << 27;
/// Memo values kept for analysis; beyond this, values are remembered only as stored.
const KEPT_VALUES: usize = 100_000;

/// The memo, bounded. Ordinary large pickles memoize millions of objects; only values that can
/// matter to the analysis (imported callables, short names that may become imports, scalars,
/// calls with small arguments) are kept, up to a cap. Every stored key is still remembered in a
/// bitset, so a GET of a key never stored is caught. A value that was not kept reads back as
/// opaque, which can only make the verdict stricter (a computed import), never hide a call.
#[derive(Default)]
struct Memo {
    kept: foldhash::HashMap<u32, V>,
    /// Expanded size and hashability of memoized containers (capped like `kept`).
    shapes: foldhash::HashMap<u32, (Rc<Shape>, bool)>,
    dense: Vec<u64>,
    sparse: foldhash::HashSet<u32>,
    len: u64,
}

impl Memo {
    fn contains(&self, key: u32) -> bool {
        if key < DENSE_KEYS {
            self.dense
                .get((key / 64) as usize)
                .is_some_and(|w| w & (1 << (key % 64)) != 0)
        } else {
            self.sparse.contains(&key)
        }
    }

    fn insert(&mut self, key: u32, value: V, sparse_limit: usize) -> Result<(), Stop> {
        let fresh = !self.contains(key);
        if key < DENSE_KEYS {
            let word = (key / 64) as usize;
            if self.dense.len() <= word {
                self.dense.resize(word + 1, 0);
            }
            self.dense[word] |= 1 << (key % 64);
        } else {
            if self.sparse.len() >= sparse_limit {
                return Err(Stop::Limit(format!(
                    "more than {sparse_limit} sparse memo keys"
                )));
            }
            self.sparse.insert(key);
        }
        if fresh {
            self.len += 1;
        }
        let shape = match &value {
            V::List(_, s) | V::Dict(_, s) => Some((s.clone(), false)),
            V::Shared(s, hashable) => Some((s.clone(), *hashable)),
            V::Tuple(..) | V::Call(..) => {
                let (weight, depth) = (value.weight(), value.depth());
                (weight > 1 || depth > 1).then(|| (Shape::new(weight, depth), true))
            }
            _ => None,
        };
        // A fresh key is in neither map: only a key stored again needs its old entry replaced
        // or dropped (a lookup per PUT is most of a large pickle's time).
        match shape {
            Some(shape) if self.shapes.len() < KEPT_VALUES => {
                self.shapes.insert(key, shape);
            }
            Some(shape) if !fresh && self.shapes.contains_key(&key) => {
                self.shapes.insert(key, shape);
            }
            _ if !fresh => {
                self.shapes.remove(&key);
            }
            _ => {}
        }
        match keepable(value) {
            Some(v) if self.kept.len() < KEPT_VALUES => {
                self.kept.insert(key, v);
            }
            Some(v) if !fresh && self.kept.contains_key(&key) => {
                self.kept.insert(key, v);
            }
            _ if !fresh => {
                self.kept.remove(&key);
            }
            _ => {}
        }
        Ok(())
    }
}

/// What of a memoized value is worth keeping (see [`Memo`]).
fn keepable(value: V) -> Option<V> {
    let small = |v: &V| match v {
        V::None | V::Bool(_) | V::Int(_) | V::Float | V::Global(_) => true,
        V::Str(s) => s.len() <= 256,
        _ => false,
    };
    match value {
        V::Global(_) | V::None | V::Bool(_) | V::Int(_) | V::Float => Some(value),
        V::Str(ref s)
            if s.len() <= 256
                && s.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.') =>
        {
            Some(value)
        }
        V::Call(ref call, depth) => match &call.1 {
            V::Tuple(args, _) if args.len() <= 8 && args.iter().all(small) => Some(value),
            _ => Some(V::Call(Rc::new((call.0.clone(), V::Opaque)), depth)),
        },
        _ => None,
    }
}

/// A value as stored inside a mutable container: lists and dicts within it become opaque, so
/// that no container can (directly or through tuples and calls) contain itself. Reference
/// cycles would leak memory on every scan of a hostile pickle.
fn detach(v: V) -> V {
    fn holds_mutable(v: &V, depth: usize) -> bool {
        match v {
            V::List(..) | V::Dict(..) => true,
            _ if depth > 16 => true,
            V::Tuple(items, _) => items.iter().any(|i| holds_mutable(i, depth + 1)),
            V::Call(call, _) => {
                holds_mutable(&call.0, depth + 1) || holds_mutable(&call.1, depth + 1)
            }
            _ => false,
        }
    }
    fn rebuild(v: V, depth: usize) -> V {
        match v {
            V::List(_, s) | V::Dict(_, s) => V::Shared(s, false),
            // Deeper items are dropped; the depth recorded above them stays.
            _ if depth > 16 => V::Opaque,
            V::Tuple(items, d) => V::Tuple(
                Rc::new(
                    items
                        .iter()
                        .cloned()
                        .map(|i| rebuild(i, depth + 1))
                        .collect(),
                ),
                d,
            ),
            V::Call(call, d) => V::Call(
                Rc::new((
                    rebuild(call.0.clone(), depth + 1),
                    rebuild(call.1.clone(), depth + 1),
                )),
                d,
            ),
            other => other,
        }
    }
    if holds_mutable(&v, 0) {
        rebuild(v, 0)
    } else {
        v
    }
}

fn require_hashable(items: &[V], opcode: &str) -> Result<(), Stop> {
    match items.iter().find(|i| !i.hashable()) {
        Some(item) => Err(Stop::Invalid(format!(
            "{opcode} with an unhashable item ({}): CPython refuses the pickle here",
            item.describe()
        ))),
        None => Ok(()),
    }
}

/// The value a BUILD state sets as `__setstate__` (in its dict, or the dict of a
/// `(dict, slots)` pair), if any.
fn setstate_in(state: &V) -> Option<V> {
    let dicts: Vec<&V> = match state {
        V::Tuple(items, _) => items.iter().take(2).collect(),
        other => vec![other],
    };
    dicts.into_iter().find_map(|d| match d {
        V::Dict(items, _) => items
            .borrow()
            .chunks_exact(2)
            .find(|kv| kv[0].as_str() == Some("__setstate__"))
            .map(|kv| kv[1].clone()),
        _ => None,
    })
}

/// The arguments of INST and OBJ as a tuple (at most [`CONTAINER_ITEMS`] kept, depth of all).
fn args_tuple(items: Vec<V>) -> V {
    let depth = items.iter().map(V::depth).max().unwrap_or(0);
    match new_tuple(cap(items)) {
        V::Tuple(items, d) => shallow(V::Tuple(items, d.max(depth.saturating_add(1)))),
        other => other,
    }
}

fn cap(mut items: Vec<V>) -> Vec<V> {
    items.truncate(CONTAINER_ITEMS);
    items
}

fn long_value(data: &[u8]) -> V {
    if data.is_empty() {
        return V::Int(0);
    }
    if data.len() > 16 {
        return V::Opaque;
    }
    let negative = data[data.len() - 1] & 0x80 != 0;
    let mut buf = [if negative { 0xff } else { 0 }; 16];
    buf[..data.len()].copy_from_slice(data);
    V::Int(i128::from_le_bytes(buf))
}

#[inline(always)]
fn parse_text<'a>(line: &'a [u8], what: &str, ok: impl Fn(&str) -> bool) -> Result<&'a str, Stop> {
    let s = std::str::from_utf8(line)
        .map_err(|_| Stop::Invalid(format!("{what} argument is not text")))?;
    if !ok(s) {
        return Err(Stop::Invalid(format!(
            "bad {what} argument `{}`",
            truncate(s, 40)
        )));
    }
    Ok(s)
}

/// PROTO: protocols up to 5 are known.
#[inline(always)]
fn protocol(proto: u8) -> Result<(), Stop> {
    if proto > 5 {
        return Err(Stop::Invalid(format!("unknown protocol {proto}")));
    }
    Ok(())
}

/// The key of a protocol-0 GET or PUT.
#[inline(always)]
fn memo_key(line: &[u8], what: &str) -> Result<u32, Stop> {
    Ok(parse_text(line, what, |s| s.trim().parse::<u32>().is_ok())?
        .trim()
        .parse::<u32>()
        .unwrap_or(0))
}

/// Protocol-0 FLOAT argument.
#[inline(always)]
fn float_text(line: &[u8]) -> Result<V, Stop> {
    parse_text(line, "FLOAT", |s| s.trim().parse::<f64>().is_ok())?;
    Ok(V::Float)
}

/// Protocol-0 INT argument: a decimal number, or `00` and `01` for False and True.
#[inline(always)]
fn int_text(line: &[u8]) -> Result<V, Stop> {
    let text = parse_text(line, "INT", |_| true)?;
    Ok(match text.trim() {
        "00" => V::Bool(false),
        "01" => V::Bool(true),
        t => V::Int(
            t.parse::<i128>()
                .map_err(|_| Stop::Invalid(format!("INT `{}` is not a number", truncate(t, 40))))?,
        ),
    })
}

/// Protocol-0 LONG argument: a decimal number with an optional `L`; too large ones are opaque.
#[inline(always)]
fn long_text(line: &[u8]) -> Result<V, Stop> {
    let text = parse_text(line, "LONG", |_| true)?;
    let t = text.trim().trim_end_matches('L');
    match t.parse::<i128>() {
        Ok(i) => Ok(V::Int(i)),
        Err(_)
            if !t.is_empty()
                && t.trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit()) =>
        {
            Ok(V::Opaque)
        }
        Err(_) => Err(Stop::Invalid(format!(
            "LONG `{}` is not a number",
            truncate(t, 40)
        ))),
    }
}

/// LONG1: a little-endian two's-complement integer with a one-byte length.
#[inline(always)]
fn long1(input: &mut Input<impl BufRead>) -> Result<V, Stop> {
    let n = input.byte()? as u64;
    let data = input.take(n)?;
    Ok(long_value(&data))
}

/// LONG4: LONG1 with a four-byte length; integers beyond 64 bytes are skipped as opaque.
#[inline(always)]
fn long4(input: &mut Input<impl BufRead>) -> Result<V, Stop> {
    let n = i32::from_le_bytes(input.fixed()?);
    if n < 0 {
        return Err(Stop::Invalid("negative LONG4 length".into()));
    }
    if n > 64 {
        input.skip(n as u64)?;
        Ok(V::Opaque)
    } else {
        let data = input.take(n as u64)?;
        Ok(long_value(&data))
    }
}

/// BINFLOAT: eight bytes, not modelled.
#[inline(always)]
fn binfloat(input: &mut Input<impl BufRead>) -> Result<V, Stop> {
    input.fixed::<8>()?;
    Ok(V::Float)
}

/// Module and attribute names: dotted identifiers (anything else is not a real import).
fn identifier(line: &[u8]) -> Result<String, Stop> {
    let s =
        std::str::from_utf8(line).map_err(|_| Stop::Invalid("GLOBAL name is not text".into()))?;
    let valid = !s.is_empty()
        && s.len() <= 256
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        });
    if !valid {
        return Err(Stop::Invalid(format!(
            "GLOBAL name `{}` is not an identifier",
            truncate(s, 40)
        )));
    }
    Ok(s.to_string())
}

/// Protocol-0 STRING argument: a Python string literal in quotes.
fn parse_quoted(line: &[u8]) -> Result<String, Stop> {
    let s = std::str::from_utf8(line)
        .map_err(|_| Stop::Invalid("STRING argument is not text".into()))?;
    let inner = s
        .strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
        .ok_or_else(|| Stop::Invalid("STRING argument is not quoted".into()))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let b = u8::from_str_radix(&hex, 16)
                    .map_err(|_| Stop::Invalid("bad \\x escape".into()))?;
                out.push(b as char);
            }
            Some(other) => out.push(other),
            None => return Err(Stop::Invalid("dangling escape".into())),
        }
    }
    Ok(out)
}

fn unescape_raw_unicode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && matches!(chars.peek(), Some('u') | Some('U')) {
            let width = if chars.next() == Some('u') { 4 } else { 8 };
            let hex: String = chars.by_ref().take(width).collect();
            match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                Some(ch) => out.push(ch),
                None => out.push_str(&hex),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn collect_bytes(v: &V, out: &mut Vec<Rc<[u8]>>, depth: usize) {
    if depth > 8 || out.len() > 8 {
        return;
    }
    match v {
        V::Bytes(Some(b)) => out.push(b.clone()),
        V::Str(s) if s.len() > 2 => out.push(Rc::from(s.as_bytes())),
        V::Tuple(items, _) => items.iter().for_each(|i| collect_bytes(i, out, depth + 1)),
        V::List(items, _) => items
            .borrow()
            .iter()
            .for_each(|i| collect_bytes(i, out, depth + 1)),
        V::Call(call, _) => collect_bytes(&call.1, out, depth + 1),
        _ => {}
    }
}

/// Whether these bytes can begin a pickle without the protocol-2 marker.
pub fn could_start_pickle(head: &[u8]) -> bool {
    matches!(
        head.first(),
        Some(
            b'(' | b'c'
                | b']'
                | b'}'
                | b')'
                | b'N'
                | b'I'
                | b'L'
                | b'F'
                | b'S'
                | b'V'
                | b'K'
                | b'J'
                | b'M'
                | b'U'
                | b'T'
                | b'X'
                | b'i'
                | b'G'
                | b'P'
        )
    )
}

/// Runs one pickle from `input`, recording findings; nested payloads are scanned afterwards.
fn run_one(ctx: &mut Ctx, input: &mut Input<impl BufRead>) -> (Outcome, Option<Stop>) {
    let start = input.pos;
    let mut vm = Vm::new(ctx, 0);
    let result = vm.run(input);
    let nested = std::mem::take(&mut vm.nested);
    let outcome_base = Outcome {
        top: None,
        saw_joblib: vm.saw_joblib,
        globals_seen: vm.globals_seen,
    };
    drop(vm);
    for (loader, payload) in nested {
        let name = format!("<payload of {loader} at offset {start}>");
        ctx.scan_member(
            &mut io::Cursor::new(&payload[..]),
            payload.len() as u64,
            &name,
        );
    }
    match result {
        Ok(top) => (
            Outcome {
                top: Some(top),
                ..outcome_base
            },
            None,
        ),
        Err(stop) => (outcome_base, Some(stop)),
    }
}

fn report_stop(ctx: &mut Ctx, stop: Stop, offset: u64) {
    match stop {
        Stop::Io(e) => ctx.add(
            "io-error",
            Verdict::Error,
            format!("offset {offset}"),
            format!("could not read the pickle: {e}"),
            None,
        ),
        Stop::Invalid(why) => ctx.add(
            "pickle-malformed",
            Verdict::Malformed,
            format!("offset {offset}"),
            format!("not a valid pickle: {why}"),
            None,
        ),
        Stop::Limit(why) => ctx.add(
            "pickle-limit",
            Verdict::Error,
            format!("offset {offset}"),
            format!("the scan stopped at a safety limit ({why}); the rest was not inspected"),
            None,
        ),
        Stop::Truncated => ctx.add(
            "pickle-truncated",
            Verdict::Malformed,
            format!("offset {offset}"),
            "the pickle ends before its STOP opcode",
            None,
        ),
    }
}

/// Scans a stream of one or more pickles (raw pickle, joblib, legacy PyTorch, npy payload).
/// `first_must_parse` is false for content only guessed to be a protocol-0 pickle.
pub(crate) fn scan_stream(
    ctx: &mut Ctx,
    reader: impl Read,
    len: u64,
    first_must_parse: bool,
) -> io::Result<Option<&'static str>> {
    Ok(scan_pass(ctx, reader, len, first_must_parse, false)?.0)
}

/// One reading of the stream: as `pickle.loads` reads it, or (`discard`) as `pickle.load` from
/// a file reads it. Returns the format and where the two readings part, if they do.
fn scan_pass(
    ctx: &mut Ctx,
    reader: impl Read,
    len: u64,
    first_must_parse: bool,
    discard: bool,
) -> io::Result<(Option<&'static str>, Option<u64>)> {
    let mut input = Input::new(BufReader::with_capacity(64 * 1024, reader), len, discard);
    let mut format = "pickle";
    let mut index = 0usize;
    let mut legacy = false;
    loop {
        let offset = input.pos;
        let before = ctx.findings_len();
        let (outcome, stop) = run_one(ctx, &mut input);
        if let Some(stop) = stop {
            if index == 0 && !first_must_parse && outcome.globals_seen == 0 {
                // Not a pickle after all: forget what the attempt said.
                ctx.truncate_findings(before);
                return Ok((None, None));
            }
            if legacy && index >= 5 {
                break; // raw storages follow the five pickles
            }
            if index > 0
                && outcome.globals_seen == 0
                && matches!(stop, Stop::Invalid(_) | Stop::Truncated)
            {
                ctx.add(
                    "pickle-trailing-data",
                    Verdict::Suspicious,
                    format!("offset {offset}"),
                    "bytes after the last pickle are not a pickle",
                    None,
                );
            } else {
                report_stop(ctx, stop, offset);
            }
            break;
        }
        if outcome.saw_joblib {
            format = "joblib";
        }
        if index == 0 && matches!(outcome.top, Some(V::Int(TORCH_LEGACY_MAGIC))) {
            legacy = true;
            format = "pytorch-legacy";
        }
        index += 1;
        if legacy && index == 5 {
            break;
        }
        // A frame that outlasts its pickle: the next `load` from a file starts after it.
        if input.frame_left > 0 && input.cross().is_err() {
            break;
        }
        if input.at_eof()? {
            break;
        }
    }
    if let (Some(at), false) = (input.crossed, discard) {
        ctx.add(
            "pickle-frame-divergence",
            Verdict::Malformed,
            format!("offset {at}"),
            "a read runs past the end of its FRAME: pickle.loads reads on, pickle.load from a file drops the rest of the frame and reads other opcodes, and Python's own unpickler refuses the file; both readings are scanned",
            None,
        );
    }
    Ok((Some(format), input.crossed))
}

/// Scans a seekable pickle both ways CPython may read it when its frames are inconsistent.
fn scan_seekable(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    len: u64,
    first_must_parse: bool,
) -> io::Result<Option<&'static str>> {
    let (format, crossed) = scan_pass(
        ctx,
        Section::new(blob, 0, len),
        len,
        first_must_parse,
        false,
    )?;
    if format.is_some() && crossed.is_some() {
        scan_pass(ctx, Section::new(blob, 0, len), len, true, true)?;
    }
    Ok(format)
}

pub(crate) fn scan_file(ctx: &mut Ctx, blob: &mut dyn Blob, len: u64) -> io::Result<&'static str> {
    Ok(scan_seekable(ctx, blob, len, true)?.unwrap_or("pickle"))
}

pub(crate) fn scan_maybe(ctx: &mut Ctx, blob: &mut dyn Blob, len: u64) -> io::Result<&'static str> {
    Ok(scan_seekable(ctx, blob, len, false)?.unwrap_or("unknown"))
}
