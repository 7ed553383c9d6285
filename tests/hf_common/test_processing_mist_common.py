"""transformers' own processor tests (ProcessorTesterMixin), run against MistProcessor with a tiny random CLIP.

The mixin's videos are random frames and its text is "lower newer": these tests check kwargs plumbing,
save/load and the input names; tests/processing checks what the features are.
"""

import tempfile
import unittest
from pathlib import Path

from transformers import BertTokenizer

from tests.hf_common.common_tests_build import common_tests_or_skip
from tests.helpers import CLIP_EMBED_DIM, write_clip_config

common_tests_or_skip()  # builds transformers' common tests from its sdist, or skips where no index answers
from hf_common_tests.test_processing_common import ProcessorTesterMixin

from modeling_mist.processing_mist import MistProcessor
from modeling_mist.video_processing_mist import MistVideoProcessor

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "lower", "newer", "upper", "older", "longer", "string"]


class MistProcessorTest(ProcessorTesterMixin, unittest.TestCase):
    processor_class = MistProcessor
    videos_input_name = "frame_features"

    @classmethod
    def setUpClass(cls):
        cls.components_dir = tempfile.TemporaryDirectory()
        folder = Path(cls.components_dir.name)
        cls.clip_model_name = write_clip_config(folder)
        (folder / "vocab.txt").write_text("\n".join(VOCABULARY) + "\n")
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.components_dir.cleanup()

    @classmethod
    def _setup_tokenizer(cls):
        return BertTokenizer.from_pretrained(cls.components_dir.name)

    @classmethod
    def _setup_video_processor(cls):
        return MistVideoProcessor(
            clip_model_name=cls.clip_model_name, clip_pretrained=None, num_frames=4, grid_size=1
        )

    @staticmethod
    def prepare_processor_dict():
        # An open-ended answer vocabulary, so that a call with text returns every model input. The mixin asks
        # for texts of up to 176 tokens, and MistProcessor cuts questions at its max_question_length.
        return {"answer_vocabulary": ["lower", "newer"], "max_question_length": 256}

    def _check_modality_outputs(self, inputs, modality):
        # CLIP features rather than pixels: the mixin's "normalised pixels average below zero" does not apply.
        self.assertEqual(inputs["frame_features"].shape[-1], CLIP_EMBED_DIM)
