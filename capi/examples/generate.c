/* sluice from C: open a model, stream one greedy answer, answer three prompts in one batch,
 * and show how errors come back.
 *
 *   cc -std=c11 -I capi/include capi/examples/generate.c -L target/release -lsluice \
 *      -Wl,-rpath,target/release -o generate
 *   ./generate MODEL [PROMPT] [MAX_TOKENS]
 *
 * MODEL is a GGUF file, an HF directory or a cache alias (smollm2-135m). The prompt goes in
 * raw (no chat template), so the tokens are llama.cpp's on the same file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

/* The streamed text, gathered to compare with the completion's. */
struct Gathered {
    char buf[1 << 16];
    size_t len;
};

static bool on_piece(void *user_data, size_t index, int64_t token, const char *text,
                     size_t text_len) {
    struct Gathered *g = user_data;
    (void)index;
    (void)token;
    if (g->len + text_len < sizeof g->buf) {
        memcpy(g->buf + g->len, text, text_len);
        g->len += text_len;
    }
    fwrite(text, 1, text_len, stderr);
    return true; /* false would stop the generation */
}

/* Stops the generation after three tokens: returning false is how a caller cancels. */
static bool stop_after_three(void *user_data, size_t index, int64_t token, const char *text,
                             size_t text_len) {
    int *seen = user_data;
    (void)index;
    (void)text;
    (void)text_len;
    if (token >= 0) *seen += 1;
    return *seen < 3;
}

static void print_tokens(const char *label, const SluiceCompletion *c) {
    size_t n = 0;
    const uint32_t *ids = sluice_completion_tokens(c, &n);
    printf("%s", label);
    for (size_t i = 0; i < n; i++) printf(" %u", ids[i]);
    printf("\n");
}

static int fail(const char *what, SluiceStatus s) {
    fprintf(stderr, "%s: status %d: %s\n", what, (int)s, sluice_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [PROMPT] [MAX_TOKENS]\n", argv[0]);
        return 2;
    }
    const char *prompt = argc > 2 ? argv[2] : "The capital of France is";
    int max_tokens = argc > 3 ? atoi(argv[3]) : 32;

    SluiceEngineOptions eo = sluice_engine_options_default();
    eo.threads = 2;
    eo.ctx = 512;
    eo.max_batch = 3;
    SluiceEngine *engine = NULL;
    SluiceStatus s = sluice_engine_open(argv[1], &eo, &engine);
    if (s != SLUICE_OK) return fail("open", s);
    fprintf(stderr, "sluice %s\n", sluice_version());

    /* One prompt, greedy, its text streamed to stderr as it comes. */
    SluiceGenerateOptions go = sluice_generate_options_default();
    go.temperature = 0.0f;
    go.raw = true;
    go.max_tokens = (uint32_t)max_tokens;
    struct Gathered *g = calloc(1, sizeof *g);
    SluiceCompletion *c = NULL;
    s = sluice_generate(engine, prompt, &go, on_piece, g, &c);
    if (s != SLUICE_OK) return fail("generate", s);
    fprintf(stderr, "\n");
    print_tokens("tokens:", c);
    double prefill = 0, decode = 0;
    sluice_completion_seconds(c, &prefill, &decode);
    printf("stop: %s, prompt %zu tokens, %.3f s + %.3f s\n", sluice_completion_stop_reason(c),
           sluice_completion_prompt_tokens(c), prefill, decode);
    if (g->len == sluice_completion_text_len(c) &&
        memcmp(g->buf, sluice_completion_text(c), g->len) == 0)
        printf("streamed text equals the completion's\n");
    sluice_completion_free(c);
    free(g);

    /* Three prompts in one batch (each layer read once per sweep for all), then alone. */
    const char *prompts[3] = {"def fibonacci(n):", "1, 2, 3, 4, 5,", "Once upon a time,"};
    SluiceCompletion *batch[3] = {NULL, NULL, NULL};
    go.max_tokens = 12;
    s = sluice_generate_batch(engine, prompts, 3, &go, NULL, NULL, batch);
    if (s != SLUICE_OK) return fail("generate_batch", s);
    for (int i = 0; i < 3; i++) {
        char label[32];
        snprintf(label, sizeof label, "batch %d tokens:", i);
        print_tokens(label, batch[i]);
        sluice_completion_free(batch[i]);
        SluiceCompletion *alone = NULL;
        s = sluice_generate(engine, prompts[i], &go, NULL, NULL, &alone);
        if (s != SLUICE_OK) return fail("generate", s);
        snprintf(label, sizeof label, "alone %d tokens:", i);
        print_tokens(label, alone);
        sluice_completion_free(alone);
    }

    /* Cancelling from the callback, and a stop string. */
    int seen = 0;
    go.max_tokens = 32;
    s = sluice_generate(engine, prompt, &go, stop_after_three, &seen, &c);
    if (s != SLUICE_OK) return fail("generate", s);
    size_t n = 0;
    sluice_completion_tokens(c, &n);
    printf("cancelled: %s after %zu tokens\n", sluice_completion_stop_reason(c), n);
    sluice_completion_free(c);
    const char *stops[1] = {" 7"};
    go.stop = stops;
    go.n_stop = 1;
    s = sluice_generate(engine, "1, 2, 3, 4,", &go, NULL, NULL, &c);
    if (s != SLUICE_OK) return fail("generate", s);
    printf("stopped: %s, text \"%s\"\n", sluice_completion_stop_reason(c), sluice_completion_text(c));
    sluice_completion_free(c);
    go.stop = NULL;
    go.n_stop = 0;

    /* Errors: a status and a message, the engine still usable. */
    SluiceEngine *none = NULL;
    s = sluice_engine_open("/nonexistent/model.gguf", NULL, &none);
    printf("open missing: status %d: %s\n", (int)s, sluice_last_error());
    const char *null_prompt[1] = {NULL};
    SluiceCompletion *nothing[1] = {NULL};
    s = sluice_generate_batch(engine, null_prompt, 1, &go, NULL, NULL, nothing);
    printf("null prompt: status %d: %s\n", (int)s, sluice_last_error());
    SluiceGenerateOptions bad = go;
    bad.temperature = -1.0f;
    s = sluice_generate(engine, prompt, &bad, NULL, NULL, &c);
    printf("bad option: status %d: %s\n", (int)s, sluice_last_error());

    sluice_engine_free(engine);
    return 0;
}
