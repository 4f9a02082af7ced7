//! The devices' enumerations, with the numbering and labels of the SDP devices of the seed's era.

use serde::{Deserialize, Serialize};

macro_rules! labelled_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $value:expr),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        pub enum $name { $($variant = $value),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn label(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),* }
            }

            /// Every label, in numbering order (Tango's `enum_labels`).
            pub fn labels() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.label()).collect()
            }

            pub fn from_label(label: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.label() == label)
            }

            pub fn from_value(value: i64) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| *v as i64 == value)
            }

            /// Python's `repr` of the original's IntEnum, used in its messages: `<ObsState.IDLE: 0>`.
            pub fn repr(self) -> String {
                format!("<{}.{}: {}>", stringify!($name), self.label(), self as i64)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.label())
            }
        }
    };
}

labelled_enum!(
    /// Observing state of a subarray.
    ObsState { IDLE = 0, CONFIGURING = 1, READY = 2, SCANNING = 3, PAUSED = 4, ABORTED = 5, FAULT = 6 }
);
labelled_enum!(AdminMode { OFFLINE = 0, ONLINE = 1, MAINTENANCE = 2, NOT_FITTED = 3, RESERVED = 4 });
labelled_enum!(HealthState { OK = 0, DEGRADED = 1, FAILED = 2, UNKNOWN = 3 });
labelled_enum!(
    /// The master's operating state attribute (`OperatingState`).
    OperatingState { INIT = 0, ON = 1, DISABLE = 2, STANDBY = 3, ALARM = 4, FAULT = 5, OFF = 6, UNKNOWN = 7 }
);
labelled_enum!(
    /// Tango's device state, with Tango's numbering (`tango.DevState`).
    DevState {
        ON = 0, OFF = 1, CLOSE = 2, OPEN = 3, INSERT = 4, EXTRACT = 5, MOVING = 6, STANDBY = 7,
        FAULT = 8, INIT = 9, RUNNING = 10, ALARM = 11, DISABLE = 12, UNKNOWN = 13,
    }
);

/// Python's `repr` of a list of enum members: `[<ObsState.IDLE: 0>, <ObsState.READY: 2>]`.
pub fn repr_list<T: Copy>(items: &[T], repr: impl Fn(T) -> String) -> String {
    format!("[{}]", items.iter().map(|i| repr(*i)).collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_and_labels() {
        assert_eq!(ObsState::READY as i64, 2);
        assert_eq!(ObsState::from_label("SCANNING"), Some(ObsState::SCANNING));
        assert_eq!(AdminMode::from_value(1), Some(AdminMode::ONLINE));
        assert_eq!(DevState::DISABLE as i64, 12);
        assert_eq!(ObsState::IDLE.repr(), "<ObsState.IDLE: 0>");
        assert_eq!(
            repr_list(&[AdminMode::OFFLINE, AdminMode::NOT_FITTED], AdminMode::repr),
            "[<AdminMode.OFFLINE: 0>, <AdminMode.NOT_FITTED: 3>]"
        );
    }
}
