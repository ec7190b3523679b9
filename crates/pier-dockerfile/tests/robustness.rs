//! Arbitrary input never panics: random texts built from the characters and words
//! that matter to the parser, the lexer and the ignore matcher (a deterministic
//! generator, so a failure reproduces). A panic in pierd's build handler would be a
//! 500 instead of Docker's 400 with the parse error.

use pier_dockerfile::expand::{process_word, process_words};
use pier_dockerfile::ignore::DockerIgnore;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const PIECES: &[&str] = &[
    "FROM ",
    "RUN ",
    "COPY ",
    "ADD ",
    "ENV ",
    "LABEL ",
    "ARG ",
    "ONBUILD ",
    "HEALTHCHECK ",
    "CMD ",
    "SHELL ",
    "EXPOSE ",
    "VOLUME ",
    "USER ",
    "WORKDIR ",
    "STOPSIGNAL ",
    "MAINTAINER ",
    "ENTRYPOINT ",
    "NONE",
    "AS ",
    "x",
    "é",
    "=",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\\",
    "`",
    "\"",
    "'",
    "$",
    "${",
    "}",
    ":-",
    ":+",
    ":?",
    "#",
    "%",
    "/",
    "//",
    "<<",
    "<<-",
    "EOF",
    "\"EOF\"",
    "-",
    "--",
    "--mount=",
    "type=",
    "cache",
    "secret",
    "tmpfs",
    ",",
    "target=",
    "--from=",
    "--chmod=",
    "--interval=",
    "1s",
    "--network=",
    "[",
    "]",
    "[\"a\"",
    ", ",
    "1",
    "*",
    "**",
    "?",
    "!",
    "[a-",
    "# escape=`\n",
    "# syntax=x\n",
    "ü",
];

fn random_text(rng: &mut Rng, max_pieces: u64) -> String {
    let n = rng.next() % max_pieces;
    (0..n).map(|_| rng.pick(PIECES)).collect()
}

#[test]
fn random_input_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let lookup = |k: &str| (k.len() % 2 == 0).then(|| format!("v{k}"));
    for _ in 0..5_000 {
        let text = random_text(&mut rng, 40);
        let _ = pier_dockerfile::parse(&text);
        let _ = pier_dockerfile::parse(&format!("FROM scratch\n{text}"));
        let _ = pier_dockerfile::parse_instruction(&text, '\\');
        let _ = process_word(&text, '\\', &lookup);
        let _ = process_words(&text, '`', &lookup);
        if let Ok(ignore) = DockerIgnore::parse(&text) {
            let path = random_text(&mut rng, 8);
            let _ = ignore.excludes(&path);
            let _ = ignore.can_skip_dir(&path);
        }
        if let Ok(pier_dockerfile::Dockerfile { stages, .. }) =
            pier_dockerfile::parse(&format!("FROM scratch\nRUN {text}"))
        {
            for ins in &stages[0].instructions {
                if let pier_dockerfile::InstructionKind::Run(r) = &ins.kind {
                    let _ = r.resolve(&["/bin/sh".to_string(), "-c".to_string()]);
                }
            }
        }
        let _ = pier_dockerfile::chmod::Chmod::parse(&text).map(|c| c.apply(0o644, false));
    }
}

/// Hostile nesting (a build context may come from anywhere) is an error or a result,
/// never a stack overflow that would take the daemon down.
#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let depth = 100_000;
    let nested = format!("{}x{}", "${a:-".repeat(depth), "}".repeat(depth));
    // On a thread with a quarter of the 2 MiB a runtime worker has.
    std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            let lookup = |_: &str| None;
            assert!(process_word(&nested, '\\', &lookup).is_err());
            let onbuilds = format!("FROM scratch\n{}RUN x\n", "ONBUILD ".repeat(depth));
            assert!(pier_dockerfile::parse(&onbuilds).is_err());
            let long_pattern = format!("{}\n", "a*".repeat(depth));
            let ignore = DockerIgnore::parse(&long_pattern).unwrap();
            assert!(!ignore.excludes("b"));
            assert!(!ignore.excludes("aaaa"), "a*a*… wants as many a as stars");
            let brackets = format!("FROM scratch\nCMD {}\n", "[".repeat(depth));
            assert!(pier_dockerfile::parse(&brackets).is_ok());
        })
        .unwrap()
        .join()
        .unwrap();
}
