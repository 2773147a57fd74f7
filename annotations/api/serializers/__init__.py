"""API shapes, one module per resource. Input serializers validate and name the field at fault; output
serializers only read."""
