
;
xPlaceholder*
T0*
dtype0*
shape
:

yRelux*
T0

yTanhx*
T0