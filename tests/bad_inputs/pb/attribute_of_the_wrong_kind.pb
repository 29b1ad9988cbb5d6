
;
xPlaceholder*
T0*
dtype0*
shape
:

yRelux*
T	float32