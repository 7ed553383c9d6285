"""transformers' own common model and config tests, run against MIST with tiny sizes."""

import tempfile
import unittest

import torch
from transformers import AutoModel

from tests.hf_common.common_tests_build import common_tests_or_skip, register_external_model

common_tests_or_skip()  # builds transformers' common tests from its sdist, or skips where no index answers
from hf_common_tests.test_configuration_common import ConfigTester
from hf_common_tests.test_modeling_common import ModelTesterMixin, floats_tensor, ids_tensor

from modeling_mist import MistConfig, MistForVideoQuestionAnswering, MistModel

# AutoModel -> the QA model for users (modeling_mist/__init__.py); the common tests' name tables want
# the base model as "base" and the head under a task whose labels are one index per video.
register_external_model(MistConfig, MistModel, heads={"video_classification": [MistForVideoQuestionAnswering]})
AutoModel.register(MistConfig, MistForVideoQuestionAnswering, exist_ok=True)

ANSWER_INPUTS = ("answer_input_ids", "answer_attention_mask", "labels")


class MistModelTester:
    def __init__(self, parent, batch_size=3, question_length=5, num_answers=6, answer_length=4, is_training=True):
        self.parent = parent
        self.batch_size = batch_size
        self.question_length = question_length
        self.num_answers = num_answers
        self.answer_length = answer_length
        self.is_training = is_training
        self.vocab_size = 99
        self.hidden_size = 32
        self.num_attention_heads = 4
        self.num_ista_layers = 2
        self.blocks_per_ista_layer = 1
        # Attentions: one per transformer block over all ISTA layers; hidden states add each layer's embedding output.
        self.num_hidden_layers = self.num_ista_layers * self.blocks_per_ista_layer
        self.expected_num_hidden_layers = self.num_ista_layers * (self.blocks_per_ista_layer + 1)
        self.num_frames, self.num_segments, self.grid_size, self.clip_hidden_size = 8, 4, 2, 16
        self.max_question_length = 7
        config = self.get_config()
        self.seq_length = config.sequence_length

    def get_config(self) -> MistConfig:
        return MistConfig(
            text_config={
                "vocab_size": self.vocab_size,
                "hidden_size": 24,
                "num_hidden_layers": 1,
                "num_attention_heads": 4,
                "intermediate_size": 37,
                "max_position_embeddings": 32,
            },
            num_frames=self.num_frames,
            num_segments=self.num_segments,
            grid_size=self.grid_size,
            clip_hidden_size=self.clip_hidden_size,
            hidden_size=self.hidden_size,
            box_hidden_size=8,
            num_ista_layers=self.num_ista_layers,
            num_hidden_layers=self.blocks_per_ista_layer,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=37,
            num_selected_segments=2,
            num_selected_patches=2,
            max_question_length=self.max_question_length,
        )

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        attention_mask = torch.ones(self.batch_size, self.question_length, dtype=torch.long)
        attention_mask[0, -2:] = 0  # one padded question
        inputs = {
            "frame_features": floats_tensor([self.batch_size, self.num_frames, self.clip_hidden_size]),
            "patch_features": floats_tensor(
                [self.batch_size, self.num_frames, self.grid_size**2, self.clip_hidden_size]
            ),
            "input_ids": ids_tensor([self.batch_size, self.question_length], self.vocab_size),
            "attention_mask": attention_mask,
            "question_clip_embeds": floats_tensor([self.batch_size, self.clip_hidden_size]),
            "answer_input_ids": ids_tensor([self.num_answers, self.answer_length], self.vocab_size),
            "answer_attention_mask": torch.ones(self.num_answers, self.answer_length, dtype=torch.long),
        }
        return config, inputs


class MistModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (MistModel, MistForVideoQuestionAnswering)
    additional_model_inputs = ["patch_features", "input_ids", "question_clip_embeds", "answer_input_ids"]
    test_resize_embeddings = False
    test_resize_position_embeddings = False
    test_can_init_all_missing_weights_before_2023 = True
    has_attentions = True

    def setUp(self):
        self.model_tester = MistModelTester(self)
        self.config_tester = ConfigTester(self, config_class=MistConfig, has_text_modality=False, hidden_size=64)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if model_class is MistModel:  # the base model has no answer side
            inputs_dict = {key: value for key, value in inputs_dict.items() if key not in ANSWER_INPUTS}
        return inputs_dict

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_can_load_ignoring_mismatched_shapes(self):
        # Answers are encoded text, not a num_labels-sized classifier: a new answer vocabulary (here 42
        # answers) reuses every weight, and the logits follow the candidates passed in.
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        model = MistForVideoQuestionAnswering(config).eval()
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder)
            reloaded = MistForVideoQuestionAnswering.from_pretrained(folder, num_labels=42).eval()
        self.assertEqual(reloaded.config.num_labels, 42)
        answers = ids_tensor([42, self.model_tester.answer_length], self.model_tester.vocab_size)
        inputs.update(answer_input_ids=answers, answer_attention_mask=torch.ones_like(answers))
        with torch.no_grad():
            expected, actual = model(**inputs).logits, reloaded(**inputs).logits
        self.assertEqual(actual.shape, (self.model_tester.batch_size, 42))
        torch.testing.assert_close(actual, expected)


class MistVariantModelTester(MistModelTester):
    """The NExT-QA switches (temporal encoder, the frame as a patch candidate, no question tokens in the sequence,
    time-axis segments, mean fusion and answer pooling) with DistilBERT text encoders, frozen position tables and
    expectation selection: every code path the AGQA tester does not take, but STAR's no-patch-selection."""

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.clip_hidden_size = self.hidden_size  # the raw frame is a patch candidate
        self.seq_length = self.get_config().sequence_length

    def get_config(self) -> MistConfig:
        return MistConfig(
            **{
                **super().get_config().to_diff_dict(),
                "text_config": {
                    "model_type": "distilbert",
                    "vocab_size": self.vocab_size,
                    "dim": 24,
                    "n_layers": 1,
                    "n_heads": 4,
                    "hidden_dim": 37,
                    "max_position_embeddings": 32,
                },
                "num_segments": self.num_frames,  # one frame per segment
                "clip_hidden_size": self.hidden_size,
                "num_temporal_layers": 1,
                "num_selected_segments": 1,
                "num_selected_patches": 3,
                "frame_as_patch_candidate": True,
                "question_tokens_in_sequence": False,
                "segment_normalization": "time",
                "fusion_pooling": "mean",
                "answer_pooling": "mean_unmasked",
                "freeze_position_embeddings": True,
                "eval_selection": "expectation",
            }
        )


class MistVariantModelTest(MistModelTest):
    def setUp(self):
        self.model_tester = MistVariantModelTester(self)
        self.config_tester = ConfigTester(self, config_class=MistConfig, has_text_modality=False, hidden_size=64)

    def test_model_get_set_embeddings(self):
        # Without question tokens in the sequence there is no question encoder: the only token embeddings are the
        # answer encoder's, which the base model does not have.
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        self.assertIsNone(MistModel(config).get_input_embeddings())
        model = MistForVideoQuestionAnswering(config)
        self.assertIs(model.get_input_embeddings(), model.answer_encoder.get_input_embeddings())
        replacement = torch.nn.Embedding(10, 24)
        model.set_input_embeddings(replacement)
        self.assertIs(model.answer_encoder.get_input_embeddings(), replacement)
