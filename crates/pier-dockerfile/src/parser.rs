//! The Dockerfile parser: lines, directives, continuations, heredocs, then each
//! instruction's flags and arguments.

use crate::{Dockerfile, Instruction, ParseError};

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let _ = text;
    Err(ParseError {
        line: 1,
        message: "the Dockerfile parser is not written yet".to_string(),
    })
}

/// Parses one instruction on its own (continuations allowed), such as an `ONBUILD`
/// trigger read from a base image's config, with the escape character of the
/// Dockerfile being built. `FROM` is refused (it is no instruction of a stage).
pub fn parse_instruction(text: &str, escape: char) -> Result<Instruction, ParseError> {
    let _ = (text, escape);
    Err(ParseError {
        line: 1,
        message: "the Dockerfile parser is not written yet".to_string(),
    })
}
