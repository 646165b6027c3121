//! The command line's errors and exit codes: [`BadInput`] marks an error as
//! the user's input being wrong, [`exit_code`] picks a failed command's
//! exit code (2 bad input, 1 anything else).
//!
//! Shared by the commands in [`crate::cli`] and the fleet's MQTT commands in
//! [`crate::mqtt::cli`]; it may use the library's error types (to tell bad
//! input from other failures) but no command module.

/// Marks an error as the user's input being wrong (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Exit code for an error: 2 for bad input, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    let input = e.chain().any(|c| {
        c.is::<BadInput>()
            || c.is::<crate::input::InputError>()
            || c.is::<twin::params::ParamError>()
            || c.is::<firmware::config_file::LoadError>()
    });
    if input {
        2
    } else {
        1
    }
}

pub(crate) fn bad(msg: String) -> anyhow::Error {
    BadInput(msg).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_exits_2_and_other_errors_1() {
        assert_eq!(exit_code(&bad("no such file".into())), 2);
        let wrapped = bad("no such file".into()).context("loading the rig");
        assert_eq!(exit_code(&wrapped), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("disk full")), 1);
    }
}
