"""Using a trained model (chapter 07): the inference engine (``inference.Matter``), what a
"background" means when compositing (``compositing``), the video pipeline (``video``), plate
alignment (``align``), matte clean-up (``cleanup``), TorchScript/ONNX export (``export``), the
``mattingkit`` command (``cli``) and the offline demo (``demo``).

May import everything below it: core, speed, weights, data, training, io, outputs, runtime.
Never widgets or notebook plotting.
"""
