//! Chat templates through [`Tokenizer::apply_chat_template`], with the constructs real
//! templates use (loop helpers, namespace, Python methods, raise_exception, tojson).
//! The real models' own templates are checked in `tokenizer_real.rs`.

use sluice_loader::gguf::{MetaArray, MetaValue, Metadata};
use sluice_loader::tokenizer::{ChatMessage, Tokenizer, TokenizerError};

/// A byte-level vocabulary with `<s>`/`</s>` (ids 256, 257) and the given template.
fn with_template(template: &str) -> Tokenizer {
    let mut tokens: Vec<String> = (0..=255u8)
        .map(|b| sluice_loader::tokenizer::byte_level_encode(&[b]))
        .collect();
    tokens.extend(["<s>".to_string(), "</s>".to_string()]);
    let mut types = vec![1i32; 256];
    types.extend([3, 3]);
    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model", MetaValue::Str("gpt2".into()));
    md.insert("tokenizer.ggml.pre", MetaValue::Str("gpt-2".into()));
    md.insert(
        "tokenizer.ggml.tokens",
        MetaValue::Array(MetaArray::Str(tokens)),
    );
    md.insert(
        "tokenizer.ggml.token_type",
        MetaValue::Array(MetaArray::I32(types)),
    );
    md.insert(
        "tokenizer.ggml.merges",
        MetaValue::Array(MetaArray::Str(vec![])),
    );
    md.insert("tokenizer.ggml.bos_token_id", MetaValue::U32(256));
    md.insert("tokenizer.ggml.eos_token_id", MetaValue::U32(257));
    md.insert("tokenizer.chat_template", MetaValue::Str(template.into()));
    Tokenizer::from_gguf_metadata(&md).unwrap()
}

/// Alternating-roles template in the style of several instruct models (written for this test).
const INST: &str = r#"{{ bos_token }}
{%- if messages[0]['role'] == 'system' %}
    {%- set system = messages[0]['content'].strip() + '\n\n' %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set system = '' %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {{- '[INST] ' + (system if loop.first else '') + message['content'] | trim + ' [/INST]' }}
    {%- else %}
        {{- ' ' + message['content'] | trim + eos_token }}
    {%- endif %}
{%- endfor %}"#;

#[test]
fn alternating_template_renders_and_rejects() {
    let t = with_template(INST);
    let msgs = [
        ChatMessage::system(" Be brief. "),
        ChatMessage::user("Hi"),
        ChatMessage::assistant("Hello!"),
        ChatMessage::user("Bye"),
    ];
    assert_eq!(
        t.apply_chat_template(&msgs, false).unwrap(),
        "<s>[INST] Be brief.\n\nHi [/INST] Hello!</s>[INST] Bye [/INST]"
    );
    let bad = [ChatMessage::user("a"), ChatMessage::user("b")];
    match t.apply_chat_template(&bad, false) {
        Err(TokenizerError::Template(msg)) => assert!(msg.contains("must alternate"), "{msg}"),
        other => panic!("expected a template error, got {other:?}"),
    }
}

#[test]
fn namespace_loop_helpers_and_methods() {
    let src = "{%- set ns = namespace(n=0) %}\
        {%- for m in messages %}{% set ns.n = ns.n + 1 %}\
        {{ loop.index }}/{{ loop.length }}:{{ m.role | upper }}={{ m.content.split(',') | join('+') }}\
        {% if not loop.last %};{% endif %}{% endfor %}|{{ ns.n }}|{{ messages | tojson }}\
        {%- if add_generation_prompt %}|gen{% endif %}";
    let t = with_template(src);
    let msgs = [ChatMessage::user("a,b"), ChatMessage::assistant("c")];
    assert_eq!(
        t.apply_chat_template(&msgs, true).unwrap(),
        r#"1/2:USER=a+b;2/2:ASSISTANT=c|2|[{"content": "a,b", "role": "user"}, {"content": "c", "role": "assistant"}]|gen"#
    );
}

#[test]
fn syntax_errors_are_reported_on_use() {
    let t = with_template("{% for m in messages %}");
    assert!(t.chat_template().is_some());
    match t.apply_chat_template(&[ChatMessage::user("x")], true) {
        Err(TokenizerError::Template(msg)) => assert!(msg.contains("syntax"), "{msg}"),
        other => panic!("expected a template error, got {other:?}"),
    }
}

#[test]
fn strftime_now_is_available() {
    let t = with_template("{{ strftime_now('%Y') | length }}");
    assert_eq!(t.apply_chat_template(&[], false).unwrap(), "4");
}

#[test]
fn a_template_that_never_ends_fails_instead_of_hanging() {
    // 10^10 iterations: without the fuel bound this runs for minutes (24 ns an instruction).
    let endless =
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x";
    let e = with_template(endless)
        .apply_chat_template(&[ChatMessage::user("hi")], true)
        .unwrap_err();
    assert!(matches!(e, TokenizerError::Template(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("instructions without finishing"), "{msg}");
}

#[test]
fn a_template_that_prints_without_end_fails_before_memory_runs_out() {
    // 1000 × 100 MB of output: without the cap this fills memory.
    let flood = "{% for i in range(1000) %}{{ 'x' * 100000000 }}{% endfor %}";
    let e = with_template(flood)
        .apply_chat_template(&[ChatMessage::user("hi")], true)
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("exceeds 64 MiB"), "{msg}");
    // Just under the cap is fine.
    let big = "{{ 'x' * 60000000 }}";
    let out = with_template(big)
        .apply_chat_template(&[ChatMessage::user("hi")], true)
        .unwrap();
    assert_eq!(out.len(), 60_000_000);
}
