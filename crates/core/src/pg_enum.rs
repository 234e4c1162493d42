//! Rust enums for Postgres enums, defined once with their labels.

/// Postgres enum labels as Rust enums: one list, its names, and parsing that names what
/// it accepts.
macro_rules! pg_enum {
    ($(#[$doc:meta])* $name:ident, $pg:literal, { $($(#[$vdoc:meta])* $variant:ident = $label:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in the Postgres enum's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The Postgres type.
            pub const PG_TYPE: &'static str = $pg;

            /// The label stored in Postgres.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let accepted: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    format!("{}: unknown value {:?} (accepted: {})", $pg, s, accepted.join(", "))
                })
            }
        }

        /// For rows read as text (`#[sqlx(try_from = "String")]` in pgwa-pg).
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use pg_enum;
