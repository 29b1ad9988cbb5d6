
E
xPlaceholder*
T0*
dtype0*
shape:À„=À„=À„=

yRelux*
T0