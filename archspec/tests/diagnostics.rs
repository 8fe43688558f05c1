//! Diagnostics as a person (or the Engineer agent) sees them: code, line:column, message, caret.

use archspec::diagnostic::render;
use archspec::{CheckConfig, Complexity, check_source};
use expect_test::{Expect, expect};

fn check(source: &str, expected: Expect) {
    check_with(source, &CheckConfig::default(), expected);
}

fn check_with(source: &str, config: &CheckConfig, expected: Expect) {
    let rendered = match check_source(source, config) {
        Ok(_) => "valid\n".to_string(),
        Err(diagnostics) => render(source, &diagnostics),
    };
    expected.assert_eq(&rendered);
}

#[test]
fn negative_token_shift_reads_the_future() {
    check(
        "mixer peek(d_model) {\n  ahead = x |> token_shift(-1)\n  return ahead |> linear(d_model)\n}\n",
        expect![[r#"
            error[E0401] at 2:11: token_shift(-1) reads position t+1, a later position: the program is not causal (a language model may only read the past)
              |   ahead = x |> token_shift(-1)
              |           ^^^^^^^^^^^^^^^^^^^^
        "#]],
    );
}

#[test]
fn syntax_errors_are_all_reported_with_what_was_expected() {
    check(
        "mixer m(d_model) {\n  a = linear(x 4)\n  b = x |>\n  return a\n}\n",
        expect![[r#"
            error[E0101] at 2:16: expected `,` or `)`, found number `4`
              |   a = linear(x 4)
              |                ^
            error[E0101] at 3:11: expected an operation name after `|>`, found end of line
              |   b = x |>
              |           ^
        "#]],
    );
}

#[test]
fn shape_errors_say_what_was_expected_and_how_to_fix_it() {
    check(
        "mixer m(d_model, heads = 4) {\n  h = x |> split_heads(heads)\n  y = h |> linear(8)\n  z = h + x\n  return y\n}\n",
        expect![[r#"
            error[E0302] at 3:7: linear expects [B,T,D], found [B,4,T,32]; use merge_heads first
              |   y = h |> linear(8)
              |       ^^^^^^^^^^^^^^
            error[E0301] at 4:7: cannot combine [B,4,T,32] with [B,T,128] in `+`; convert one side with split_heads or merge_heads
              |   z = h + x
              |       ^^^^^
        "#]],
    );
}

#[test]
fn names_operations_and_arguments_are_checked() {
    check(
        "mixer m(d_model) {\n  a = x |> silo\n  b = y\n  c = linear(x)\n  c = x\n  return x\n}\n",
        expect![[r#"
            error[E0203] at 2:12: `silo` is not an operation; did you mean `silu`?
              |   a = x |> silo
              |            ^^^^
            error[E0201] at 3:7: unknown name `y`
              |   b = y
              |       ^
            error[E0204] at 4:7: linear needs argument `n`; usage: linear(v, n, bias = false)
              |   c = linear(x)
              |       ^^^^^^^^^
            error[E0202] at 5:3: `c` is already defined; every name is assigned once
              |   c = x
              |   ^
        "#]],
    );
}

#[test]
fn hyperparameters_are_whole_numbers_with_defaults() {
    check(
        "mixer m(d_model, heads = 3, d_head = d_model / heads, n) {\n  return x\n}\n",
        expect![[r#"
            error[E0205] at 1:38: 128 / 3 is not a whole number; hyperparameters are integers
              | mixer m(d_model, heads = 3, d_head = d_model / heads, n) {
              |                                      ^^^^^^^^^^^^^^^
            error[E0205] at 1:55: hyperparameter `n` has no value; give it a default: `n = 4`
              | mixer m(d_model, heads = 3, d_head = d_model / heads, n) {
              |                                                       ^
        "#]],
    );
}

#[test]
fn the_return_value_must_have_d_model_features() {
    check(
        "mixer m(d_model) {\n  return x |> linear(64)\n}\n",
        expect![[r#"
            error[E0303] at 2:10: the mixer must return [B,T,128] (d_model features), found a tensor [B,T,64]; end with … |> linear(d_model)
              |   return x |> linear(64)
              |          ^^^^^^^^^^^^^^^
        "#]],
    );
}

#[test]
fn attention_arguments_must_agree() {
    check(
        "mixer m(d_model) {\n  q = x |> split_heads(4)\n  k = x |> split_heads(8)\n  o = softmax_attention(q, k, q)\n  beta = x |> linear(4)\n  p = delta_rule(q, q, q, beta)\n  return x\n}\n",
        expect![[r#"
            error[E0301] at 4:7: softmax_attention: q and k must have the same shape, found [B,4,T,32] and [B,8,T,16]
              |   o = softmax_attention(q, k, q)
              |       ^^^^^^^^^^^^^^^^^^^^^^^^^^
            error[E0302] at 6:7: delta_rule: `beta` must be a per-head scalar [B,4,T], found [B,T,4]; write x |> linear(4) |> sigmoid |> split_heads(4)
              |   p = delta_rule(q, q, q, beta)
              |       ^^^^^^^^^^^^^^^^^^^^^^^^^
        "#]],
    );
}

#[test]
fn complexity_above_the_limit_is_rejected() {
    let config = CheckConfig {
        max_complexity: Some(Complexity::Linear),
        ..CheckConfig::default()
    };
    check_with(
        archspec::library::get("sliding_window").unwrap().source,
        &config,
        expect![[r#"
            error[E0402] at 7:7: window_attention(64) costs window in the sequence length; this campaign allows at most linear
              |   o = window_attention(q, k, v, window)
              |       ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
        "#]],
    );
}

#[test]
fn a_convolution_wider_than_a_few_taps_costs_a_window() {
    let config = CheckConfig {
        max_complexity: Some(Complexity::Linear),
        ..CheckConfig::default()
    };
    // 16 taps are a local mix, linear in T; 17 read as far back as a window does.
    let source = |width: usize| {
        format!("mixer m(d_model) {{\n  return x |> short_conv({width}) |> linear(d_model)\n}}\n")
    };
    assert!(archspec::check_source(&source(16), &config).is_ok());
    check_with(
        &source(17),
        &config,
        expect![[r#"
            error[E0402] at 2:10: short_conv(17) costs window in the sequence length; this campaign allows at most linear
              |   return x |> short_conv(17) |> linear(d_model)
              |          ^^^^^^^^^^^^^^^^^^^
        "#]],
    );
}

#[test]
fn dimensions_over_the_limit_are_rejected() {
    check(
        "mixer m(d_model) {\n  return x |> linear(1000000) |> linear(d_model)\n}\n",
        expect![[r#"
            error[E0501] at 2:10: linear: `n` = 1000000 is over the limit of 65536
              |   return x |> linear(1000000) |> linear(d_model)
              |          ^^^^^^^^^^^^^^^^^^^^
        "#]],
    );
}

#[test]
fn bad_characters_and_numbers_are_located() {
    check(
        "mixer m(d_model) {\n  a = x @ 1e999\n  return x\n}\n",
        expect![[r#"
            error[E0001] at 2:9: unexpected character '@'
              |   a = x @ 1e999
              |         ^
            error[E0002] at 2:11: number `1e999` is too large
              |   a = x @ 1e999
              |           ^^^^^
            error[E0101] at 2:11: expected end of statement (a new line or `;`), found number `1`
              |   a = x @ 1e999
              |           ^^^^^
        "#]],
    );
}

#[test]
fn multi_line_pipelines_and_comments_are_fine() {
    check(
        "# doc\nmixer m(d_model) {\n  a = x\n    |> linear(d_model) # project\n    |> silu\n  return a\n}\n",
        expect![[r#"
            valid
        "#]],
    );
}
