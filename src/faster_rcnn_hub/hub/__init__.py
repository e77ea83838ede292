"""The Hugging Face Hub side of a converted folder: the model code it carries for `trust_remote_code=True`
(`remote_code.py`) and its upload as a model repository (`upload.py`)."""

from .upload import HubUploadError, UploadFile, describe_plan, push_to_hub, upload_plan

__all__ = ["HubUploadError", "UploadFile", "describe_plan", "push_to_hub", "upload_plan"]
