"""sluice: run LLMs larger than memory by streaming their layers from NVMe.

Type stubs of the compiled module (maturin ships them in the wheel)."""
from typing import Iterator, Optional, Sequence, TypedDict, Union

__version__: str

Message = TypedDict("Message", {"role": str, "content": str})
#: A prompt: text (through the chat template unless ``raw=True``), chat messages, or token ids.
Prompt = Union[str, Sequence[Message], Sequence[int]]

class SluiceError(Exception):
    """An engine call failed; the message is the engine's."""

class BadInputError(SluiceError):
    """The input is at fault: the model file, the prompt, or an option out of range."""

class Completion:
    """What a generation produced."""
    text: str
    tokens: list[int]
    prompt_tokens: list[int]
    #: "length", "eos", "stop" or "interrupted"
    stop_reason: str
    prefill_s: float
    decode_s: float
    decode_steps: int
    @property
    def stats(self) -> dict: ...

class TokenStream(Iterator[str]):
    """The text of a generation, piece by piece as tokens come."""
    #: The whole result, once the iterator is exhausted.
    completion: Optional[Completion]
    def __next__(self) -> str: ...

class Engine:
    """A model opened for generation.

    ``model`` is a GGUF file, an HF directory or a cache alias (``smollm2-135m``).
    ``ram_budget`` is bytes (or a size such as ``"2G"``) of weights kept in RAM; ``0`` streams
    every layer from disk for every token; ``None`` keeps what fits in the memory limit.
    """
    def __init__(self, model: str = "smollm2-135m", *, ram_budget: Union[int, str, None] = None,
                 threads: Optional[int] = None, ctx: int = 4096, max_batch: int = 8,
                 device: str = "auto", tokenizer: Optional[str] = None) -> None: ...
    def generate(self, prompt: Prompt, *, max_tokens: int = 128, temperature: float = 0.8,
                 top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05,
                 repeat_penalty: float = 1.0, repeat_last_n: int = 64, seed: Optional[int] = None,
                 stop: Union[str, Sequence[str], None] = None, raw: bool = False) -> Completion: ...
    def stream(self, prompt: Prompt, **options) -> TokenStream:
        """As ``generate``, yielding the text as it comes."""
    def generate_batch(self, prompts: Sequence[Union[Prompt, dict]], **options) -> list[Completion]:
        """As ``generate`` for every prompt, up to ``max_batch`` per layer sweep; in order. An
        item may be a dict with "prompt" or "messages" and options of its own, over the call's."""
    def perplexity(self, text: str, *, ctx: int = 512, chunks: Optional[int] = None,
                   batch: int = 2048) -> dict:
        """llama-perplexity's figures over ``text``: ppl, uncertainty, per_chunk, ..."""
    def tokenize(self, prompt: Prompt, *, raw: bool = False) -> list[int]: ...
    def detokenize(self, tokens: Sequence[int]) -> str: ...
    @property
    def info(self) -> dict: ...
