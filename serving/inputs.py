"""The typed inputs of the image routes: BentoML input specs that read JSON, multipart uploads and raw image bodies.

BentoML 1.4 turns a request into an API's typed input in the input spec's `from_http_request`, choosing a parser
by Content-Type. Two of its parsers cannot serve these routes as they are: a root input (one positional-only
parameter, BentoML issue 4651) takes a raw body but no other parameter, so a route cannot also take JSON or a form;
and its multipart reader answers a malformed body, a text value in a file field (which it fetches as a URL) or a
deeply nested field with a 500. So each image route's spec (`ImageRequest` below) reads a multipart body or a raw
image body itself, straight into the `image` bytes field (no base64, no temporary file), and hands JSON to
pydantic as BentoML does. Images are decoded by the service, with `serving.preprocess.open_image`'s guards.

A body that cannot be read is refused as BentoML refuses a bad JSON body: a pydantic ValidationError, 400.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import bentoml
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import PydanticCustomError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from serving.schemas import FILE_HELP, IMAGE_HELP, MODEL_HELP, PIXELS_HELP, SAMPLE_PNG

MULTIPART = "multipart/form-data"
# Raw image bodies: image/*, octet-stream, curl's default for --data-binary, or no type and an image's magic number.
RAW_TYPES = ("application/octet-stream", "application/x-www-form-urlencoded")
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF", b"qoif")
MAX_FIELDS = 64  # text fields of one multipart body (model, pixels, image_base64 and stray ones)


def media_type(request: Request) -> str:
    """The request body's media type, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_raw_image(media: str, body: bytes) -> bool:
    """True when a body of this media type is an image sent as it is, not JSON or a form."""
    return media.startswith("image/") or media in RAW_TYPES or (not media and body.startswith(IMAGE_MAGIC))


def unreadable(spec: type[BaseModel], field: str, message: str) -> ValidationError:
    """A body that cannot be read, refused like BentoML's own validation errors (400, the message in `detail`)."""
    error = PydanticCustomError("unreadable_body", message)  # type: ignore[call-overload]
    return ValidationError.from_exception_data(spec.__name__, [{"type": error, "loc": (field,), "input": None}])


class ImageRequest(bentoml.IODescriptor):
    """Base of the image routes' inputs: JSON through pydantic, multipart and raw bodies read here."""

    FILE_FIELD: ClassVar[str] = "image"  # the multipart field that holds image files
    TEXT_FIELDS: ClassVar[tuple[str, ...]] = ("model", "image_base64")  # multipart text fields, taken as they are
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("pixels",)  # multipart text fields holding JSON

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.model_fields.get(cls.FILE_FIELD)
        if field is not None and field.annotation == bytes | None:  # a file field: BentoML documents the form
            cls.multipart_fields = [cls.FILE_FIELD]

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> ImageRequest:
        """The typed input of one request, whichever of the three body forms it came in."""
        media = media_type(request)
        if media == MULTIPART:
            return cls.from_form(await read_form(request, cls), request)
        body = await request.body()
        if is_raw_image(media, body):
            return cls.from_image(body, request.query_params.get("model"))
        return cls.model_validate_json(body or b"{}")

    @classmethod
    def from_image(cls, data: bytes, model: str | None) -> ImageRequest:
        """A raw image body, with `?model=`."""
        return cls.model_validate({"image": data, "model": model})

    @classmethod
    def from_form(cls, form: dict[str, Any], request: Request) -> ImageRequest:
        """The fields of a multipart body (`read_form`)."""
        files = form.pop(cls.FILE_FIELD, [])
        if len(files) > 1:
            raise unreadable(cls, cls.FILE_FIELD, "send one file in `image`; POST /predict_batch takes several")
        return cls.model_validate({**form, **({"image": files[0]} if files else {})})


async def read_form(request: Request, spec: type[ImageRequest]) -> dict[str, Any]:
    """A multipart body -> {file field: [bytes, ...], text field: value}; fields the spec does not name are dropped."""
    try:
        form = await request.form(max_fields=MAX_FIELDS)
    except Exception as exc:  # malformed multipart: Starlette and python-multipart raise several kinds
        raise unreadable(spec, spec.FILE_FIELD, f"malformed multipart body: {getattr(exc, 'detail', exc)}") from None
    fields: dict[str, Any] = {spec.FILE_FIELD: []}
    for name, value in form.multi_items():
        if name == spec.FILE_FIELD:
            if not isinstance(value, UploadFile):
                raise unreadable(spec, name, f"`{name}` must be a file upload (curl -F {name}=@digit.png)")
            fields[name].append(await value.read())
        elif name in spec.TEXT_FIELDS + spec.JSON_FIELDS:
            if not isinstance(value, str):
                raise unreadable(spec, name, f"`{name}` must be a text field, not a file")
            fields[name] = _json(spec, name, value) if name in spec.JSON_FIELDS else value
    return fields


def _json(spec: type[BaseModel], name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past Python's limit
        raise unreadable(spec, name, f"`{name}` must be JSON (a 28x28 array)") from None


class PredictInput(ImageRequest):
    """One image for one model: a multipart `image` file, a raw image body, or JSON `image_base64` or `pixels`."""

    image: bytes | None = Field(None, description=FILE_HELP)
    image_base64: str | None = Field(None, description=IMAGE_HELP, json_schema_extra={"example": SAMPLE_PNG})
    pixels: list[list[float]] | None = Field(None, description=PIXELS_HELP)
    model: str | None = Field(None, description=MODEL_HELP + "; with a raw image body: `?model=`")


class PredictAllInput(ImageRequest):
    """One image for every served model, in the same forms as /predict (no model)."""

    image: bytes | None = Field(None, description=FILE_HELP)
    image_base64: str | None = Field(None, description=IMAGE_HELP, json_schema_extra={"example": SAMPLE_PNG})
    pixels: list[list[float]] | None = Field(None, description=PIXELS_HELP)

    @classmethod
    def from_image(cls, data: bytes, model: str | None) -> ImageRequest:
        return cls.model_validate({"image": data})


class ImageInput(BaseModel):
    """One image of a batch: exactly one of the three."""

    image: bytes | None = Field(None, description="a multipart `images` file or a raw image body")
    image_base64: str | None = Field(None, description=IMAGE_HELP, json_schema_extra={"example": SAMPLE_PNG})
    pixels: list[list[float]] | None = Field(None, description=PIXELS_HELP)


class BatchInput(ImageRequest):
    """Several images for one model: JSON `images`, several multipart `images` files, or one raw image body."""

    FILE_FIELD: ClassVar[str] = "images"
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ()

    images: list[ImageInput] = Field(
        description="JSON: a list of {image_base64 | pixels}; multipart: several `images` files",
        json_schema_extra={"example": [{"image_base64": SAMPLE_PNG}] * 2},
    )
    model: str | None = Field(None, description=MODEL_HELP + "; with a raw image body: `?model=`")

    @classmethod
    def from_image(cls, data: bytes, model: str | None) -> ImageRequest:
        return cls.model_validate({"images": [{"image": data}], "model": model})

    @classmethod
    def from_form(cls, form: dict[str, Any], request: Request) -> ImageRequest:
        images = [{"image": data} for data in form.pop(cls.FILE_FIELD, [])]
        return cls.model_validate({**form, "images": images})
