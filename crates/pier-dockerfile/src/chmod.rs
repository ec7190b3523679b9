//! `COPY --chmod` / `ADD --chmod` values: octal (`755`, `0644`, at most `7777`) or
//! symbolic as chmod(1) (`u+x,g-w,o=r`, `a+X`, `go=u`), with BuildKit's semantics: it
//! parses symbolic modes with tonistiigi/dchapes-mode (BSD `setmode` ported to Go) and
//! a zero umask, which this module follows step by step: a clause without `ugoa`
//! applies to all, `X` only counts with `+`, `s`/`t` are ignored for `o` alone, `=`
//! clears the set-id bits of `u`/`g` but not the sticky bit unless `t` is given.

const IS_UID: u32 = 0o4000;
const IS_GID: u32 = 0o2000;
const IS_TXT: u32 = 0o1000;
const RWXU: u32 = 0o700;
const RWXG: u32 = 0o070;
const RWXO: u32 = 0o007;
const STANDARD_BITS: u32 = IS_UID | IS_GID | RWXU | RWXG | RWXO;

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    Octal(u32),
    /// The operations, applied in order to each file's current mode.
    Symbolic(Vec<BitCmd>),
}

/// One operation of a symbolic mode (dchapes-mode's `bitcmd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitCmd {
    /// `+`, `-`, `X` (add execute where some was set, or on directories), or `u`/`g`/`o`
    /// (copy that class's bits).
    cmd: u8,
    /// For copies: clear, set, and which classes.
    cmd2: u8,
    bits: u32,
}

const CMD2_CLEAR: u8 = 1;
const CMD2_SET: u8 = 2;
const CMD2_GBITS: u8 = 4;
const CMD2_OBITS: u8 = 8;
const CMD2_UBITS: u8 = 16;

/// A value that is neither octal nor symbolic. Displays as BuildKit does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777")]
pub struct ChmodError {
    pub value: String,
}

impl Chmod {
    /// Parses an (expanded) `--chmod` value.
    pub fn parse(value: &str) -> Result<Chmod, ChmodError> {
        let bad = || ChmodError {
            value: value.to_string(),
        };
        let Some(&first) = value.as_bytes().first() else {
            return Err(bad());
        };
        if first.is_ascii_digit() {
            let mode = u32::from_str_radix(value, 8).map_err(|_| bad())?;
            if mode > 0o7777 {
                return Err(bad());
            }
            return Ok(Chmod::Octal(mode));
        }
        parse_symbolic(value.as_bytes())
            .map(Chmod::Symbolic)
            .ok_or_else(bad)
    }

    /// The permission bits (0o7777) a file or directory gets, from its current mode.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let cmds = match self {
            Chmod::Octal(m) => return *m,
            Chmod::Symbolic(c) => c,
        };
        let old = mode & 0o7777;
        let mut new = old;
        for c in cmds {
            match c.cmd {
                b'u' => copy_bits(c, (new & RWXU) >> 6, &mut new),
                b'g' => copy_bits(c, (new & RWXG) >> 3, &mut new),
                b'o' => copy_bits(c, new & RWXO, &mut new),
                b'+' => new |= c.bits,
                b'-' => new &= !c.bits,
                b'X' if old & 0o111 != 0 || is_dir => new |= c.bits,
                _ => {}
            }
        }
        new
    }
}

/// Copies one class's rwx `value` to the classes `c` names (dchapes-mode's `common`).
fn copy_bits(c: &BitCmd, value: u32, new: &mut u32) {
    let classes = [(CMD2_UBITS, 6), (CMD2_GBITS, 3), (CMD2_OBITS, 0)];
    if c.cmd2 & CMD2_CLEAR != 0 {
        let clear = if c.cmd2 & CMD2_SET != 0 { RWXO } else { value };
        for (flag, shift) in classes {
            if c.cmd2 & flag != 0 {
                *new &= !((clear << shift) & c.bits);
            }
        }
    }
    if c.cmd2 & CMD2_SET != 0 {
        for (flag, shift) in classes {
            if c.cmd2 & flag != 0 {
                *new |= (value << shift) & c.bits;
            }
        }
    }
}

/// dchapes-mode's `ParseWithUmask(s, 0)` for symbolic modes: None on a syntax error.
fn parse_symbolic(mut s: &[u8]) -> Option<Vec<BitCmd>> {
    // The umask is 0: everything is allowed.
    let mask = !0u32;
    let mut cmds = Vec::new();
    let mut equal_op_done = false;
    loop {
        let mut who = 0u32;
        loop {
            match s.first()? {
                b'a' => who |= STANDARD_BITS,
                b'u' => who |= IS_UID | RWXU,
                b'g' => who |= IS_GID | RWXG,
                b'o' => who |= RWXO,
                _ => break,
            }
            s = &s[1..];
        }
        loop {
            let op = *s.first()?;
            s = &s[1..];
            match op {
                b'+' | b'-' => {}
                b'=' => equal_op_done = false,
                _ => return None,
            }
            who &= !IS_TXT;
            let (mut perm, mut perm_x) = (0u32, 0u32);
            loop {
                let b = s.first().copied().unwrap_or(0);
                match b {
                    b'r' => perm |= 0o444,
                    b's' if who == 0 || who & !RWXO != 0 => perm |= IS_UID | IS_GID,
                    b's' => {}
                    b't' if who == 0 || who & !RWXO != 0 => {
                        who |= IS_TXT;
                        perm |= IS_TXT;
                    }
                    b't' => {}
                    b'w' => perm |= 0o222,
                    b'X' => {
                        if op == b'+' {
                            perm_x = 0o111;
                        }
                    }
                    b'x' => perm |= 0o111,
                    b'u' | b'g' | b'o' => {
                        if perm != 0 {
                            add_cmd(&mut cmds, op, who, perm, mask);
                            perm = 0;
                        }
                        if op == b'=' {
                            equal_op_done = true;
                        }
                        if perm_x != 0 {
                            add_cmd(&mut cmds, b'X', who, perm_x, mask);
                            perm_x = 0;
                        }
                        add_cmd(&mut cmds, b, who, u32::from(op), mask);
                    }
                    _ => {
                        if perm != 0 || op == b'=' && !equal_op_done {
                            if op == b'=' {
                                equal_op_done = true;
                            }
                            add_cmd(&mut cmds, op, who, perm, mask);
                        }
                        if perm_x != 0 {
                            add_cmd(&mut cmds, b'X', who, perm_x, mask);
                        }
                        break;
                    }
                }
                s = &s[1..];
            }
            match s.first() {
                None => return Some(cmds),
                Some(b',') => {
                    s = &s[1..];
                    break;
                }
                Some(_) => continue,
            }
        }
    }
}

/// dchapes-mode's `addcmd`.
fn add_cmd(cmds: &mut Vec<BitCmd>, op: u8, who: u32, oparg: u32, mask: u32) {
    match op {
        b'=' | b'+' | b'-' | b'X' => {
            let mut op = op;
            if op == b'=' {
                cmds.push(BitCmd {
                    cmd: b'-',
                    cmd2: 0,
                    bits: if who != 0 { who } else { STANDARD_BITS },
                });
                op = b'+';
            }
            cmds.push(BitCmd {
                cmd: op,
                cmd2: 0,
                bits: if who != 0 { who & oparg } else { mask & oparg },
            });
        }
        _ => {
            // u, g, o: copy; oparg is the operator.
            let (mut cmd2, bits) = if who != 0 {
                let mut c = 0;
                if who & 0o400 != 0 {
                    c |= CMD2_UBITS;
                }
                if who & 0o040 != 0 {
                    c |= CMD2_GBITS;
                }
                if who & 0o004 != 0 {
                    c |= CMD2_OBITS;
                }
                (c, !0u32)
            } else {
                (CMD2_UBITS | CMD2_GBITS | CMD2_OBITS, mask)
            };
            cmd2 |= match oparg as u8 {
                b'+' => CMD2_SET,
                b'-' => CMD2_CLEAR,
                _ => CMD2_SET | CMD2_CLEAR,
            };
            cmds.push(BitCmd {
                cmd: op,
                cmd2,
                bits,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(spec: &str, mode: u32, is_dir: bool) -> u32 {
        Chmod::parse(spec).unwrap().apply(mode, is_dir)
    }

    #[test]
    fn octal_values() {
        assert_eq!(Chmod::parse("755").unwrap(), Chmod::Octal(0o755));
        assert_eq!(Chmod::parse("0644").unwrap(), Chmod::Octal(0o644));
        assert_eq!(Chmod::parse("4755").unwrap().apply(0o600, false), 0o4755);
        assert_eq!(
            Chmod::parse("17777").unwrap_err().to_string(),
            "invalid chmod parameter: '17777'. it should be octal string and between 0 and 07777"
        );
        assert!(Chmod::parse("789").is_err());
    }

    #[test]
    fn symbolic_values() {
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("+x", 0o644, false), 0o755);
        assert_eq!(apply("g-w,o-rwx", 0o775, false), 0o750);
        assert_eq!(apply("go=u", 0o640, false), 0o666);
        assert_eq!(apply("a=r", 0o777, false), 0o444);
        assert_eq!(apply("a+X", 0o644, false), 0o644);
        assert_eq!(apply("a+X", 0o744, false), 0o755);
        assert_eq!(apply("a+X", 0o644, true), 0o755);
        assert_eq!(apply("u+s,+t", 0o755, false), 0o5755);
        assert_eq!(apply("u=rwx,g=rx,o=", 0o000, false), 0o750);
        assert_eq!(apply("u+r-w", 0o600, false), 0o400);
        assert_eq!(apply("+w", 0o444, false), 0o666, "no umask");
        assert_eq!(apply("=", 0o4755, false), 0o000);
        // As BSD chmod: `=` keeps the sticky bit unless `t` is named, `o+t` and
        // `o+s` do nothing, `X` only adds.
        assert_eq!(apply("a=rx", 0o1777, true), 0o1555);
        assert_eq!(apply("o+t,o+s", 0o755, false), 0o755);
        assert_eq!(apply("a-X", 0o755, false), 0o755);
        assert_eq!(apply("u=rw,g+u", 0o4701, false), 0o661);
        assert_eq!(
            apply("u+ug=", 0o754, false),
            0o054,
            "operators may follow each other"
        );
        for bad in ["x", "u", "z+x", "u+q", "u+x,", ""] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
    }

    /// dchapes-mode's TestApply rows with a zero umask (the one BuildKit uses):
    /// (old mode, is a directory, new mode, mode string).
    #[test]
    fn dchapes_mode_apply_table() {
        const D: bool = true;
        const F: bool = false;
        let rows: &[(u32, bool, u32, &str)] = &[
            (0o777, F, 0o000, "="),
            (0o777, F, 0o777, "+"),
            (0o421, F, 0o421, "+"),
            (0o777, F, 0o777, "-"),
            (0o421, F, 0o421, "-"),
            (0o421, F, 0o1421, "+t"),
            (0o1421, F, 0o421, "-t"),
            (0o000, F, 0o400, "u+r"),
            (0o000, F, 0o200, "u+w"),
            (0o000, F, 0o100, "u+x"),
            (0o000, F, 0o000, "u+X"),
            (0o001, F, 0o101, "u+X"),
            (0o000, D, 0o100, "u+X"),
            (0o000, F, 0o4000, "u+s"),
            (0o000, F, 0o040, "g+r"),
            (0o000, F, 0o020, "g+w"),
            (0o000, F, 0o010, "g+x"),
            (0o000, F, 0o000, "g+X"),
            (0o100, F, 0o110, "g+X"),
            (0o000, D, 0o010, "g+X"),
            (0o000, F, 0o2000, "g+s"),
            (0o000, F, 0o004, "o+r"),
            (0o000, F, 0o002, "o+w"),
            (0o000, F, 0o001, "o+x"),
            (0o000, F, 0o000, "o+X"),
            (0o100, F, 0o101, "o+X"),
            (0o000, D, 0o001, "o+X"),
            (0o000, F, 0o000, "o+s"),
            (0o000, F, 0o421, "0421"),
            (0o000, F, 0o7421, "07421"),
            (0o000, F, 0o444, "+r"),
            (0o000, F, 0o222, "+w"),
            (0o000, F, 0o111, "+x"),
            (0o000, F, 0o000, "+X"),
            (0o010, F, 0o111, "+X"),
            (0o000, D, 0o111, "+X"),
            (0o000, F, 0o6000, "+s"),
            (0o777, F, 0o333, "-r"),
            (0o777, F, 0o555, "-w"),
            (0o777, F, 0o666, "-x"),
            (0o777, F, 0o777, "-X"),
            (0o777, D, 0o777, "-X"),
            (0o6777, F, 0o777, "-s"),
            (0o777, F, 0o377, "u-r"),
            (0o777, F, 0o577, "u-w"),
            (0o777, F, 0o677, "u-x"),
            (0o777, F, 0o777, "u-X"),
            (0o777, D, 0o777, "u-X"),
            (0o4777, F, 0o777, "u-s"),
            (0o000, F, 0o600, "u=rw"),
            (0o777, F, 0o677, "u=rw"),
            (0o777, F, 0o077, "u="),
            (0o000, F, 0o666, "=rw"),
            (0o777, F, 0o666, "=rw"),
            (0o042, F, 0o442, "u=g"),
            (0o742, F, 0o442, "u=g"),
            (0o722, F, 0o022, "u=g-w"),
            (0o742, F, 0o442, "u=g-w"),
            (0o762, F, 0o462, "u=g-w"),
            (0o772, F, 0o572, "u=g-w"),
            (0o021, F, 0o121, "u+o"),
            (0o021, F, 0o221, "u+g"),
            (0o021, F, 0o321, "u+go"),
            (0o000, F, 0o764, "a=r,ug=rw,u+x"),
            (0o777, F, 0o764, "a=r,ug=rw,u+x"),
            (0o000, F, 0o1624, "o+r,g+w,a+t,g-s,u+og"),
            (0o2100, F, 0o1724, "o+r,g+w,a+t,g-s,u+og"),
            (0o6000, D, 0o5624, "o+r,g+w,a+t,g-s,u+og"),
            (0o777, F, 0o644, "644"),
            (0o777, F, 0o755, "go-w"),
            (0o000, F, 0o755, "u=rwx,go=rx"),
            (0o000, F, 0o755, "u=rwx,go=u-w"),
            (0o777, F, 0o700, "go="),
            (0o770, F, 0o755, "go=u-w"),
            (0o670, F, 0o644, "go=u-w"),
            (0o570, F, 0o555, "go=u-w"),
            (0o370, F, 0o311, "go=u-w"),
        ];
        for &(old, is_dir, new, spec) in rows {
            assert_eq!(apply(spec, old, is_dir), new, "{spec:?} on {old:o}");
        }
    }
}
