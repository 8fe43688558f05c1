//! Limits that keep the checker fast on any input, hostile programs included.

/// Largest accepted source, in bytes.
pub const MAX_SOURCE_BYTES: usize = 64 * 1024;
/// Most tokens in one program.
pub const MAX_TOKENS: usize = 16 * 1024;
/// Most statements (and hyperparameters) in one program.
pub const MAX_STATEMENTS: usize = 256;
/// Deepest expression nesting.
pub const MAX_DEPTH: usize = 64;
/// Largest value of any dimension (features, heads, widths, windows).
pub const MAX_DIM: i64 = 65_536;
/// Most paths in one `route`.
pub const MAX_ROUTE_PATHS: usize = 16;
/// Most nodes in the lowered graph (statements can nest many operations).
pub const MAX_NODES: usize = 4096;
