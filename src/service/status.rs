//! Manager errors as ttrpc statuses: the [`ErrorKind`] picks the code, the typed error's
//! `Display` chain (never `Debug`) is the message.

use crate::manager::{ErrorKind, ManagerError};

/// The ttrpc code for an error class.
pub fn code(kind: ErrorKind) -> ttrpc::Code {
    match kind {
        ErrorKind::InvalidArgument => ttrpc::Code::INVALID_ARGUMENT,
        ErrorKind::PermissionDenied => ttrpc::Code::PERMISSION_DENIED,
        ErrorKind::NotFound => ttrpc::Code::NOT_FOUND,
        ErrorKind::AlreadyExists => ttrpc::Code::ALREADY_EXISTS,
        ErrorKind::ResourceExhausted => ttrpc::Code::RESOURCE_EXHAUSTED,
        ErrorKind::Internal => ttrpc::Code::INTERNAL,
        ErrorKind::NotHandledHere => ttrpc::Code::UNIMPLEMENTED,
    }
}

/// The one-line message of an error and its sources.
pub fn message(e: &dyn std::error::Error) -> String {
    crate::error_chain(e)
}

/// The status a manager error goes back as.
pub fn to_ttrpc(e: &ManagerError) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code(e.kind()), message(e)))
}

/// The code's name as the protocol spells it (`INVALID_ARGUMENT`, …).
pub fn code_name(code: ttrpc::Code) -> &'static str {
    use ttrpc::Code as C;
    match code {
        C::OK => "OK",
        C::CANCELLED => "CANCELLED",
        C::UNKNOWN => "UNKNOWN",
        C::INVALID_ARGUMENT => "INVALID_ARGUMENT",
        C::DEADLINE_EXCEEDED => "DEADLINE_EXCEEDED",
        C::NOT_FOUND => "NOT_FOUND",
        C::ALREADY_EXISTS => "ALREADY_EXISTS",
        C::PERMISSION_DENIED => "PERMISSION_DENIED",
        C::RESOURCE_EXHAUSTED => "RESOURCE_EXHAUSTED",
        C::FAILED_PRECONDITION => "FAILED_PRECONDITION",
        C::ABORTED => "ABORTED",
        C::OUT_OF_RANGE => "OUT_OF_RANGE",
        C::UNIMPLEMENTED => "UNIMPLEMENTED",
        C::INTERNAL => "INTERNAL",
        C::UNAVAILABLE => "UNAVAILABLE",
        C::DATA_LOSS => "DATA_LOSS",
        C::UNAUTHENTICATED => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn codes_and_messages() {
        let e = ManagerError::NotFound(PathBuf::from("/run/x"));
        let ttrpc::Error::RpcStatus(s) = to_ttrpc(&e) else {
            panic!("not a status")
        };
        assert_eq!(s.code(), ttrpc::Code::NOT_FOUND);
        assert_eq!(s.message(), "No volume is mounted at \"/run/x\"");
        let io = std::io::Error::other("disk full");
        let e = ManagerError::State {
            op: "write",
            source: io,
        };
        assert_eq!(code(e.kind()), ttrpc::Code::INTERNAL);
        assert_eq!(message(&e), "Cannot write the state file: disk full");
        assert_eq!(code_name(ttrpc::Code::ALREADY_EXISTS), "ALREADY_EXISTS");
    }
}
