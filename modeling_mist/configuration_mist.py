"""MIST model configuration."""

from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec


@strict
class MistConfig(PreTrainedConfig):
    r"""
    Configuration of a MIST model (Multi-modal Iterative Spatial-Temporal Transformer, CVPR 2023).
    The defaults are the paper's AGQA settings.

    Args:
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the two text encoders (question and answers). Defaults to bert-base-uncased sizes.
        num_frames (`int`, defaults to 32): frames sampled per video.
        num_segments (`int`, defaults to 8): equal segments the frames are grouped into.
        grid_size (`int`, defaults to 4): patches per frame are a `grid_size x grid_size` grid.
        crop_size (`int`, defaults to 224): side of one patch crop; the canvas is `grid_size * crop_size`.
        clip_hidden_size (`int`, defaults to 512): width of the CLIP image and text embeddings.
        hidden_size (`int`, defaults to 512): width of the ISTA transformer (d_model).
        box_hidden_size (`int`, defaults to 128): width of the patch box-descriptor encoding.
        num_ista_layers (`int`, defaults to 2): iterative selection + attention layers.
        num_hidden_layers (`int`, defaults to 2): transformer blocks inside each ISTA layer.
        num_attention_heads (`int`, defaults to 8): attention heads of those blocks.
        intermediate_size (`int`, defaults to 1024): feed-forward width of those blocks.
        hidden_act (`str`, defaults to `"gelu"`): feed-forward activation.
        token_projection_act (`str`, defaults to `"gelu"`): activation of the question, segment and patch token
            projections (Linear -> activation -> LayerNorm); the reference's exact (erf) GELU.
        dropout (`float`, defaults to 0.3): dropout on embeddings, feed-forward outputs and the fusion head.
        attention_dropout (`float`, defaults to 0.3): dropout on attention probabilities.
        layer_norm_eps (`float`, defaults to 1e-12): epsilon of every LayerNorm of the ISTA layers.
        initializer_range (`float`, defaults to 0.02): std of the normal weight initialisation.
        num_selected_segments (`int`, defaults to 2): segments kept per ISTA layer (top-k).
        num_selected_patches (`int`, defaults to 12): patches kept per kept frame (top-j).
        max_question_length (`int`, defaults to 30): question token positions Q inside the ISTA sequence.
        max_answer_length (`int`, defaults to 38): answer tokens kept by the processor.
        train_selection (`str`, defaults to `"gumbel"`): how selection works in training mode:
            `"gumbel"` draws soft Gumbel-softmax weights like the reference, `"topk"` uses the
            deterministic hard top-k of inference (no selection noise).
        gumbel_temperature (`float`, defaults to 1.0): temperature of the training-time Gumbel-softmax.
        answer_pooling (`str`, defaults to `"cls"`): how an answer's token states become one vector
            (`"cls"`: first token, as the AGQA reference; `"mean"`: masked mean).
        task (`str`, defaults to `"open-ended"`): `"open-ended"` (every question is scored against one
            shared answer vocabulary, `id2label`) or `"multiple-choice"` (each question brings its own
            choices; `id2label` is unused).
        choice_template (`str`, defaults to `"{choice}"`): how a multiple-choice candidate becomes the text
            the answer encoder reads; `{question}`, `{choice}` and `{sep}` (the tokenizer's separator) are
            filled in, e.g. `"{question} {sep} {choice}"` for the NExT-QA and STAR references.

    The task definition (task, choice template, answer vocabulary) lives here, with the weights it was
    trained for: it is saved in `config.json`, shown on the Hub, and read by the processor, `mist
    evaluate`, `mist predict` and the pipeline. The processor receives a copy when it is built
    (`MistProcessor.from_mist_config`) so that it also works on its own.
    """

    model_type = "mist"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    text_config: dict | PreTrainedConfig | None = None
    num_frames: int = 32  # frames sampled per video (F)
    num_segments: int = 8  # segments of consecutive frames (S)
    grid_size: int = 4  # patches per frame = grid_size ** 2 (P)
    crop_size: int = 224  # pixels per patch crop side; canvas side = grid_size * crop_size
    clip_hidden_size: int = 512  # CLIP embedding width (D)
    hidden_size: int = 512  # ISTA transformer width (d)
    box_hidden_size: int = 128  # width of the encoded patch box descriptors
    num_ista_layers: int = 2  # iterative select-then-attend layers
    num_hidden_layers: int = 2  # transformer blocks per ISTA layer
    num_attention_heads: int = 8  # heads per attention block
    intermediate_size: int = 1024  # feed-forward width
    hidden_act: str = "gelu"  # feed-forward activation
    token_projection_act: str = "gelu"  # activation of the question / segment / patch token projections
    dropout: float | int = 0.3  # embedding / feed-forward / fusion dropout
    attention_dropout: float | int = 0.3  # attention-probability dropout
    layer_norm_eps: float = 1e-12  # LayerNorm epsilon (DistilBERT-style blocks)
    initializer_range: float = 0.02  # std of normal initialisation
    num_selected_segments: int = 2  # top-k segments kept per ISTA layer
    num_selected_patches: int = 12  # top-j patches kept per kept frame
    max_question_length: int = 30  # question positions Q in the ISTA sequence
    max_answer_length: int = 38  # answer tokens the processor keeps
    train_selection: Literal["gumbel", "topk"] = "gumbel"  # training-time selection rule
    gumbel_temperature: float = 1.0  # Gumbel-softmax temperature in training
    answer_pooling: Literal["cls", "mean"] = "cls"  # answer token states -> one vector
    task: Literal["open-ended", "multiple-choice"] = "open-ended"  # shared vocabulary or per-question choices
    choice_template: str = "{choice}"  # multiple choice: candidate text read by the answer encoder

    @property
    def multiple_choice(self) -> bool:
        return self.task == "multiple-choice"

    @property
    def answer_vocabulary(self) -> list[str] | None:
        """The open-ended answers in logit order (`id2label`), or None: multiple choice, or only
        transformers' placeholder labels (`LABEL_0`, ...), which mean that no vocabulary was set."""
        if self.multiple_choice:
            return None
        id2label = {int(index): name for index, name in self.id2label.items()}
        if all(name == f"LABEL_{index}" for index, name in id2label.items()):
            return None
        return [id2label[index] for index in sorted(id2label)]

    def set_answer_vocabulary(self, answers: list[str]) -> None:
        """Make `answers` the open-ended vocabulary (`id2label` / `label2id`, in logit order)."""
        if self.multiple_choice:
            raise ValueError("a multiple-choice config has no answer vocabulary; its questions bring their choices")
        if not answers:
            raise ValueError("the answer vocabulary is empty; expected at least one answer")
        self.id2label = dict(enumerate(answers))
        self.label2id = {answer: index for index, answer in enumerate(answers)}

    @property
    def num_patches(self) -> int:
        """Patches per frame (P)."""
        return self.grid_size**2

    @property
    def frames_per_segment(self) -> int:
        return self.num_frames // self.num_segments

    @property
    def num_video_tokens(self) -> int:
        """Segment summaries plus kept patches in one ISTA sequence."""
        kept_patches = self.num_selected_segments * self.frames_per_segment * self.num_selected_patches
        return self.num_segments + kept_patches

    @property
    def num_output_hidden_states(self) -> int:
        """Hidden states `output_hidden_states` returns: per ISTA layer, the embedding output and each block's output."""
        return self.num_ista_layers * (self.num_hidden_layers + 1)

    @property
    def sequence_length(self) -> int:
        """Length of the ISTA transformer input: `[Q question | S segments | kept patches]`."""
        return self.max_question_length + self.num_video_tokens

    def validate_mist_sizes(self):
        """Reject size combinations the architecture cannot express."""
        if "{choice}" not in self.choice_template:
            raise ValueError(f"choice_template={self.choice_template!r} must contain '{{choice}}'")
        if self.num_frames % self.num_segments != 0:
            raise ValueError(
                f"num_frames={self.num_frames} must be divisible by num_segments={self.num_segments}"
            )
        if not 1 <= self.num_selected_segments <= self.num_segments:
            raise ValueError(
                f"num_selected_segments={self.num_selected_segments} must be in [1, num_segments={self.num_segments}]"
            )
        if not 1 <= self.num_selected_patches <= self.num_patches:
            raise ValueError(
                f"num_selected_patches={self.num_selected_patches} must be in [1, grid_size**2={self.num_patches}]"
            )
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size={self.hidden_size} must be divisible by num_attention_heads={self.num_attention_heads}"
            )


__all__ = ["MistConfig"]
