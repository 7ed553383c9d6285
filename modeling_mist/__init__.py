"""MIST for transformers. `import modeling_mist` registers the Auto classes."""

from transformers import AutoConfig, AutoModel

from .configuration_mist import MistConfig
from .modeling_mist import MistForVideoQuestionAnswering, MistModel, MistPreTrainedModel

AutoConfig.register("mist", MistConfig)
# AutoModel gives the question-answering model, as remote-code multimodal models on the Hub do.
AutoModel.register(MistConfig, MistForVideoQuestionAnswering)
# Files written by save_pretrained carry an auto_map, so they load with trust_remote_code alone.
MistConfig.register_for_auto_class()
MistForVideoQuestionAnswering.register_for_auto_class("AutoModel")

__all__ = ["MistConfig", "MistForVideoQuestionAnswering", "MistModel", "MistPreTrainedModel"]
