"""griffe extension: transformers' docstring references, `[`Name`]`, become cross-references the strict build checks.

A docstring that writes [`MistModelOutput`] or [`MistProcessor.from_mist_config`] links to that object's API entry;
a name that does not exist in the docstring's scope stays an unresolved reference, which fails `mkdocs build --strict`.
"""

import re

import griffe

# [`Name`] or [`~Name.attr`], not already followed by a link target: [`x`][...] or [`x`](...)
REFERENCE = re.compile(r"\[`~?([A-Za-z_][\w.]*)`\](?![\[(])")


def target(obj: griffe.Object, name: str) -> str:
    """The full path of `name` from `obj`'s scope or its package's, else `name` itself (left unresolved)."""
    head, _, rest = name.partition(".")
    for scope in (obj, obj.package):
        try:
            path = scope.resolve(head)
        except griffe.NameResolutionError:
            continue
        return f"{path}.{rest}" if rest else path
    return name


class TransformersReferences(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = REFERENCE.sub(
                lambda match: f"[`{match[1]}`][{target(obj, match[1])}]", obj.docstring.value
            )
