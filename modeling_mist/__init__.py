"""MIST for transformers. `import modeling_mist` registers the Auto classes."""

from transformers import AutoConfig, AutoModel, AutoProcessor, AutoVideoProcessor
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_mist import MistConfig
from .modeling_mist import MistForVideoQuestionAnswering, MistModel, MistPreTrainedModel
from .pipeline_mist import TASK, MistVideoQuestionAnsweringPipeline
from .processing_mist import MistProcessor
from .selection_mist import MistSelection
from .video_processing_mist import MistVideoProcessor

AutoConfig.register("mist", MistConfig)
# AutoModel gives the question-answering model, as remote-code multimodal models on the Hub do.
AutoModel.register(MistConfig, MistForVideoQuestionAnswering)
AutoProcessor.register(MistConfig, MistProcessor)
AutoVideoProcessor.register(MistConfig, MistVideoProcessor)
# Files written by save_pretrained carry an auto_map, so they load with trust_remote_code alone.
MistConfig.register_for_auto_class()
MistForVideoQuestionAnswering.register_for_auto_class("AutoModel")
MistProcessor.register_for_auto_class()
MistVideoProcessor.register_for_auto_class()
# pipeline("video-question-answering", model=...) in this process; saved configs carry the pipeline and its code.
PIPELINE_REGISTRY.register_pipeline(
    TASK, pipeline_class=MistVideoQuestionAnsweringPipeline, pt_model=AutoModel, type="multimodal"
)

__all__ = [
    "MistConfig",
    "MistForVideoQuestionAnswering",
    "MistModel",
    "MistPreTrainedModel",
    "MistProcessor",
    "MistSelection",
    "MistVideoProcessor",
    "MistVideoQuestionAnsweringPipeline",
]
